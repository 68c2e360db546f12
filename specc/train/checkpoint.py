"""Checkpoints: everything a training run needs to continue exactly where it stopped, in one .npz.

    weights/<layer>/<weight>     every weight, Keras names (so a checkpoint also works as a weights file)
    optimizer/<slot>             the optimizer's state arrays; optimizer/iterations, optimizer/learning_rate
    callbacks/<i>/<name>         arrays a callback keeps (EarlyStopping's best weights)
    state                        JSON text (a 0-d unicode array, never a pickle): epoch and batch reached,
                                 the shuffle generator's state at the start of that epoch, the running sums
                                 of the epoch so far, the history, each callback's state, the run's settings

Written atomically like every file specc writes: a crash leaves the previous checkpoint or the new one.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import Problem, SpecError
from ..io.npz import NpzError, read_npz

FORMAT = 1
WEIGHTS, OPTIMIZER, CALLBACKS, STATE = "weights/", "optimizer/", "callbacks/", "state"


@dataclass
class TrainState:
    """Where a run is. `epoch` is the epoch in progress (0-based) and `step` the batches of it already done;
    `rng` is the shuffle generator's state at the start of `epoch`, so its batches are drawn again exactly."""
    epochs: int
    batch_size: int
    rng: dict
    epoch: int = 0
    step: int = 0
    running: dict = field(default_factory=dict)    # RunningLogs of the batches done: {"sums": {...}, "count": n}
    history: list = field(default_factory=list)
    finished: bool = False
    stopped: Optional[dict] = None                 # {"reason": ..., "message": ..., "epoch": e, "batch": b}
    callbacks: list = field(default_factory=list)  # each callback's JSON state, in spec order
    run: dict = field(default_factory=dict)        # what the run was started with: spec path, rendered spec, rows

    @classmethod
    def fresh(cls, seed: int, epochs: int, batch_size: int) -> "TrainState":
        # a stream of its own: changing the model does not reshuffle the data
        return cls(epochs, batch_size, np.random.default_rng([seed, 1]).bit_generator.state)

    def describe(self) -> str:
        """Where the run is: "batch 17 of epoch 3 (of 30 epochs)", "the end of epoch 2 (of 30 epochs)"."""
        where = (f"batch {self.step} of epoch {self.epoch + 1}" if self.step else
                 f"the end of epoch {self.epoch}" if self.epoch else "the start")
        return f"{where} (of {self.epochs} epochs)"


def checkpoint_arrays(params, optimizer, state: TrainState, callback_arrays: dict) -> dict[str, np.ndarray]:
    arrays = {WEIGHTS + k: v for k, v in params.as_dict().items()}
    arrays.update({OPTIMIZER + k: v for k, v in optimizer.state.items()})
    arrays[OPTIMIZER + "iterations"] = np.array(optimizer.iterations, np.int64)
    arrays[OPTIMIZER + "learning_rate"] = np.array(optimizer.learning_rate, np.float64)
    arrays.update({f"{CALLBACKS}{k}": v for k, v in callback_arrays.items()})
    arrays[STATE] = np.array(json.dumps({"format": FORMAT, **asdict(state)}))  # 0-d unicode, no pickle
    return arrays


@dataclass
class Checkpoint:
    path: Path
    state: TrainState
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]

    def restore_optimizer(self, optimizer):
        """Put the saved optimizer state into `optimizer`; a different optimizer or size is a SpecError."""
        slots = {k: v for k, v in self.optimizer.items() if k not in ("iterations", "learning_rate")}
        expected = {name: array.shape for name, array in optimizer.state.items()}
        if {k: v.shape for k, v in slots.items()} != expected:
            raise SpecError([Problem(
                f"checkpoint's optimizer state ({', '.join(sorted(slots)) or 'none'}) does not fit the spec's "
                f"{optimizer.config.type} optimizer ({', '.join(sorted(expected)) or 'no state'})",
                file=str(self.path))])
        for name, array in slots.items():
            optimizer.state[name][...] = array
        optimizer.iterations = int(self.optimizer["iterations"])
        optimizer.learning_rate = float(self.optimizer["learning_rate"])


def is_checkpoint(arrays: dict) -> bool:
    return STATE in arrays and any(k.startswith(WEIGHTS) for k in arrays)


def weights_of(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights in a weights file or a checkpoint."""
    if not is_checkpoint(arrays):
        return arrays
    return {k[len(WEIGHTS):]: v for k, v in arrays.items() if k.startswith(WEIGHTS)}


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint (safely: no pickles); a missing, damaged or foreign file is a SpecError naming it."""
    path = Path(path)

    def fail(message):
        return SpecError([Problem(message, (), str(path))])
    try:
        arrays = read_npz(path)
    except NpzError as e:
        raise SpecError([Problem(f"cannot read checkpoint: {m}", (), str(path)) for m in e.messages]) from None
    if not is_checkpoint(arrays):
        raise fail("is not a specc checkpoint (it has no training state; a weights file goes to --weights)")
    try:
        saved = json.loads(str(arrays[STATE]))
        if saved.pop("format", None) != FORMAT:
            raise fail(f"is a checkpoint of another format than this specc writes ({FORMAT})")
        state = TrainState(**saved)
    except (ValueError, TypeError) as e:
        raise fail(f"has a damaged training state ({e})") from None
    state.callback_arrays = {k[len(CALLBACKS):]: v for k, v in arrays.items() if k.startswith(CALLBACKS)}
    return Checkpoint(path, state, weights_of(arrays),
                      {k[len(OPTIMIZER):]: v for k, v in arrays.items() if k.startswith(OPTIMIZER)})
