"""Checkpoints: everything a training run needs to continue exactly where it stopped, in one .npz.

    weights/<layer>/<weight>     every weight, Keras names (so a checkpoint also works as a weights file)
    optimizer/<slot>             the optimizer's state arrays (its gradient accumulator too); optimizer/iterations,
                                 optimizer/learning_rate (the rate in force; a schedule's at the iterations)
    callbacks/<i>/<name>         arrays a callback keeps (EarlyStopping's best weights)
    state                        JSON text (a 0-d unicode array, never a pickle): epoch and batch reached,
                                 the shuffle generator's state at the start of that epoch, the running sums
                                 of the epoch so far, the history, each callback's state, the run's settings

Written atomically like every file specc writes: a crash leaves the previous checkpoint or the new one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import Problem, SpecError
from ..io.npz import NpzArchive, NpzError
from ..io.weights import STATE, WEIGHTS, is_checkpoint, not_finite, not_numbers, weights_of

FORMAT = 1
OPTIMIZER, CALLBACKS = "optimizer/", "callbacks/"


@dataclass
class TrainState:
    """Where a run is. `epoch` is the epoch in progress (0-based) and `step` the batches of it already done;
    `rng` is the shuffle generator's state at the start of `epoch`, so its batches are drawn again exactly."""
    epochs: int
    batch_size: int
    rng: Mapping[str, Any]  # the bit generator's state, as numpy gives and takes it
    epoch: int = 0
    step: int = 0
    running: dict = field(default_factory=dict)    # RunningLogs.state() of the batches done: sums, count, metrics
    history: list = field(default_factory=list)
    finished: bool = False
    stopped: Optional[dict] = None                 # {"reason": ..., "message": ..., "epoch": e, "batch": b}
    callbacks: list = field(default_factory=list)  # each callback's JSON state, in spec order
    run: dict = field(default_factory=dict)        # what the run was started with: spec path, rendered spec, rows
    callback_arrays: dict = field(default_factory=dict, repr=False)  # arrays callbacks keep: saved as arrays

    def as_json(self) -> dict:
        """Everything but the arrays, for the checkpoint's JSON text."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "callback_arrays"}

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
    arrays[STATE] = np.array(json.dumps({"format": FORMAT, **state.as_json()}))  # 0-d unicode, no pickle
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
        if optimizer.schedule is None:  # a schedule's rate follows from the iterations
            optimizer.learning_rate = float(self.optimizer["learning_rate"])


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint (safely: no pickles); a missing, damaged, foreign or hand-edited file that would not
    resume is a SpecError naming it, and the array or field of its training state that is wrong."""
    path = Path(path)

    def refuse(messages: list[str]) -> SpecError:
        return SpecError([Problem(message, (), str(path)) for message in messages])
    try:
        with NpzArchive(path) as archive:
            headers = archive.headers
            if not is_checkpoint(headers):
                raise refuse(["is not a specc checkpoint (it has no training state; a weights file goes to "
                              "--weights)"])
            problems = not_numbers(headers, [name for name in headers if name != STATE])
            if headers[STATE].shape != () or headers[STATE].dtype.kind != "U":
                problems.append(f"has a damaged training state: array '{STATE}' is {headers[STATE].dtype} of "
                                f"shape {headers[STATE].shape}, not JSON text")
            if problems:
                raise refuse(problems)
            arrays = archive.read()
    except NpzError as e:
        raise refuse([f"cannot read checkpoint: {m}" for m in e.messages]) from None
    problems = not_finite(arrays, [name for name in arrays if name != STATE]) + _optimizer_problems(arrays)
    saved, state_problems = _saved_state(arrays[STATE])
    if saved is not None and saved.pop("format", None) != FORMAT:
        raise refuse([f"is a checkpoint of another format than this specc writes ({FORMAT})"])
    problems += [f"has a damaged training state: {m}" for m in state_problems]
    if problems:
        raise refuse(problems)
    assert saved is not None, "a state that is not a JSON object comes with problems, refused above"
    state = TrainState(**saved, callback_arrays={k[len(CALLBACKS):]: v for k, v in arrays.items()
                                                 if k.startswith(CALLBACKS)})
    return Checkpoint(path, state, weights_of(arrays),
                      {k[len(OPTIMIZER):]: v for k, v in arrays.items() if k.startswith(OPTIMIZER)})


def _optimizer_problems(arrays: dict[str, np.ndarray]) -> list[str]:
    """The optimizer's step count and learning rate: present, single numbers, not negative."""
    problems = []
    for name, kinds, what in (("iterations", "iu", "a whole number"), ("learning_rate", "iuf", "a number")):
        array = arrays.get(OPTIMIZER + name)
        if array is None:
            problems.append(f"has no array '{OPTIMIZER}{name}'")
        elif array.shape != () or array.dtype.kind not in kinds or array < 0:
            problems.append(f"array '{OPTIMIZER}{name}' is {array.dtype} of shape {array.shape}; it must be "
                            f"{what}, not negative")
    return problems


def _whole(value, at_least: int, below: Optional[int] = None) -> bool:
    return type(value) is int and value >= at_least and (below is None or value < below)


def _numbers_by_name(value) -> bool:
    return isinstance(value, dict) and all(type(v) in (int, float) for v in value.values())


def _numbers(value) -> bool:
    """A number, or a list of numbers or of such lists (a metric's totals)."""
    return type(value) in (int, float) or (isinstance(value, list) and all(_numbers(v) for v in value))


def _running(value) -> bool:
    """RunningLogs.state(): loss sums, rows counted, and each metric's totals by name."""
    metrics = value.get("metrics", {}) if isinstance(value, dict) else None
    return value == {} or (
        isinstance(value, dict) and {"sums", "count"} <= set(value) <= {"sums", "count", "metrics"}
        and _numbers_by_name(value["sums"]) and _whole(value["count"], 0) and isinstance(metrics, dict)
        and all(isinstance(totals, dict) and all(_numbers(v) for v in totals.values()) for totals in metrics.values()))


def _rng_state(value) -> bool:
    """The state of numpy's PCG64 generator, which TrainState.fresh makes, as its `state` property gives it."""
    inner = value.get("state") if isinstance(value, dict) else None
    return (isinstance(value, dict) and set(value) == {"bit_generator", "state", "has_uint32", "uinteger"}
            and value["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
            and all(_whole(v, 0, 2 ** 128) for v in inner.values()) and _whole(value["has_uint32"], 0, 2)
            and _whole(value["uinteger"], 0, 2 ** 32))


def _run(value) -> bool:
    """What a run was started with (Model.fit): each entry is optional, as a run started without a spec has none."""
    rendered = value.get("rendered", {}) if isinstance(value, dict) else None
    return (isinstance(rendered, dict) and isinstance(rendered.get("fit", {}), dict)
            and isinstance(value.get("spec", ""), str) and _whole(value.get("rows", 1), 1))


def _stopped(value) -> bool:
    return value is None or (
        isinstance(value, dict) and set(value) == {"reason", "message", "epoch", "batch"}
        and isinstance(value["reason"], str) and isinstance(value["message"], str)
        and _whole(value["epoch"], 0) and (value["batch"] is None or _whole(value["batch"], 0)))


# every field of TrainState, as checkpoint_arrays writes it: what it must be, and that in words
_STATE_FIELDS = {
    "epochs": (lambda v: _whole(v, 1), "a whole number, at least 1"),
    "batch_size": (lambda v: _whole(v, 1), "a whole number, at least 1"),
    "rng": (_rng_state, "the state of numpy's PCG64 generator"),
    "epoch": (lambda v: _whole(v, 0), "a whole number, at least 0"),
    "step": (lambda v: _whole(v, 0), "a whole number, at least 0"),
    "running": (_running, '{} or {"sums": {name: number}, "count": rows, "metrics": {name: {total: numbers}}}'),
    "history": (lambda v: isinstance(v, list) and all(_numbers_by_name(e) for e in v),
                "a list of {name: number} objects, one per epoch"),
    "finished": (lambda v: type(v) is bool, "true or false"),
    "stopped": (_stopped, 'null or {"reason": text, "message": text, "epoch": number, "batch": number or null}'),
    "callbacks": (lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
                  "a list of objects, one per callback"),
    "run": (_run, '{"spec": path, "rendered": spec, "rows": rows}'),
}


def _saved_state(array: np.ndarray) -> tuple[Optional[dict], list[str]]:
    """The training state's JSON object (from a 0-d text array), and what is wrong with it (each naming the
    field)."""
    try:
        saved = json.loads(str(array))
    except (ValueError, RecursionError) as e:
        return None, [f"it is not JSON ({e})"]
    if not isinstance(saved, dict):
        return None, [f"it is {type(saved).__name__} in JSON, not an object"]
    if saved.get("format") != FORMAT:
        return saved, []  # another format: its fields are not this one's
    problems = [f"unknown field '{name}'" for name in saved if name not in (*_STATE_FIELDS, "format")]
    for name, (valid, what) in _STATE_FIELDS.items():
        if name not in saved:
            problems.append(f"no '{name}' field")
        elif not valid(saved[name]):
            shown = json.dumps(saved[name])
            problems.append(f"'{name}' is {shown if len(shown) <= 60 else shown[:57] + '...'}; it must be {what}")
    if problems:
        return saved, problems
    epochs, epoch, step = saved["epochs"], saved["epoch"], saved["step"]
    if epoch > epochs:
        problems.append(f"'epoch' is {epoch}, beyond 'epochs' ({epochs})")
    elif step and epoch == epochs:
        problems.append(f"'step' is {step} after the last epoch; a finished run is at step 0")
    rows = saved["run"].get("rows")
    if rows is not None and step > -(-rows // saved["batch_size"]):
        problems.append(f"'step' is {step}, beyond the {-(-rows // saved['batch_size'])} batches of an epoch "
                        f"({rows} rows in batches of {saved['batch_size']})")
    return saved, problems
