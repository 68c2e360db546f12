"""The fit / evaluate / predict loops over mini-batches."""
from __future__ import annotations

import contextlib
import itertools
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Mapping, Optional

import numpy as np
from numpy.lib import format as npy

from ..graph import Graph
from ..io.batches import prefetched
from ..io.data import Column, Dataset
from ..io.rows import row_chunks
from ..io.weights import terminate_raises, write_members
from ..layers import Training
from ..runtime.blas import managed
from ..runtime.parameters import Parameters
from .callbacks import Callback, Trainer
from .checkpoint import TrainState
from .losses import masked_sample_weight
from .objective import Objective, log_name
from .optimizers import NonFiniteGradients, Optimizer
from .progress import Progress
from .regularization import WeightRules
from .run import RunFiles


def batches(rows: int, batch_size: int, order: Optional[np.ndarray] = None):
    for start in range(0, rows, batch_size):
        index = slice(start, start + batch_size) if order is None else np.sort(order[start:start + batch_size])
        yield index


def shuffled_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    """rng.permutation(rows), in int32 where the rows allow: the same numbers (a shuffle draws the same swaps
    whatever the dtype), in half the memory (289 MiB rather than 578 for 76 million rows)."""
    order = np.arange(rows, dtype=np.int32 if rows < 2 ** 31 else np.int64)
    rng.shuffle(order)
    return order


def losses(graph: Graph, objective: Objective, values: dict, batch: Dataset, masks: Optional[dict] = None):
    """(total weighted loss, per-output losses, per-output loss gradients) of one batch; an output's mask
    (`masks`, from the forward pass's tape) leaves its masked positions out, as Keras' losses do."""
    total, per_output, output_grads = 0.0, {}, {}
    for out in graph.outputs:
        sample_weight = batch.sample_weight if not masks or out not in masks else \
            masked_sample_weight(batch.sample_weight, masks[out])
        loss, grad = objective.losses[out](values[out], batch.targets[out], sample_weight)
        weight = objective.weights[out]
        per_output[out] = loss
        total += weight * loss
        output_grads[out] = grad * weight if weight != 1.0 else grad
    return total, per_output, output_grads


def train_step(graph: Graph, params: Parameters, optimizer: Optimizer, objective: Objective, batch: Dataset,
               training: Training, rules: Optional[WeightRules] = None):
    """One optimizer step; returns (total loss, per-output losses, outputs). `training` seeds the step's noise;
    the total includes the layers' penalties (activity and weight regularizers), as Keras' logged loss does;
    `rules` constrains the weights after the step.

    A loss that is not finite takes no step (the caller stops on it); gradients that are not finite raise
    NonFiniteGradients carrying the loss, and take no step either."""
    values, tape = graph.forward(params, batch.inputs, training)
    total, per_output, output_grads = losses(graph, objective, values, batch, tape.masks)
    total += sum(training.losses)
    outputs = {o: values[o] for o in graph.outputs}
    if not math.isfinite(total):
        return total, per_output, outputs
    params.grads[...] = 0
    graph.backward(params, tape, output_grads)
    if rules is not None:
        total += rules.penalize()
    try:
        optimizer.step(params.trainable, params.trainable_grads)
    except NonFiniteGradients as e:
        e.loss = total
        raise
    if rules is not None:
        rules.constrain()
    return total, per_output, outputs


class RunningLogs:
    """Losses and metrics over the batches of an epoch so far, as Keras reports them: each loss a mean of its
    batch values weighted by the batches' rows; each metric from its totals over every batch (a mean metric's
    values summed and counted; precision, AUC... from their counts). `state()` is JSON: checkpoints keep it
    so a run resumed mid-epoch ends the epoch with the same numbers."""

    def __init__(self, graph: Graph, objective: Objective, prefix: str = ""):
        self.graph, self.objective, self.prefix = graph, objective, prefix
        self.sums: dict[str, float] = {}
        self.count = 0
        names = graph.outputs
        self.metrics = {log_name(o, column, names): (o, metric.start())
                        for o in names for column, metric in objective.metrics[o].items()}

    def add(self, total: float, per_output: dict, outputs: dict, targets: dict, rows: int):
        entries = {"loss": total}
        if len(self.graph.outputs) > 1:
            entries.update({f"{o}_loss": per_output[o] for o in self.graph.outputs})
        for k, v in entries.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * rows
        self.count += rows
        for output, metric in self.metrics.values():
            metric.update(outputs[output], targets[output])

    def means(self) -> dict[str, float]:
        logs = {self.prefix + k: v / max(self.count, 1) for k, v in self.sums.items()}
        logs.update({self.prefix + name: metric.result() for name, (_, metric) in self.metrics.items()})
        return logs

    def state(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count,
                "metrics": {name: metric.state() for name, (_, metric) in self.metrics.items()}}

    def restore(self, state: dict):
        self.sums = {k: v for k, v in state.get("sums", {}).items() if k not in self.metrics}
        self.count = state.get("count", 0)
        for name, saved in state.get("metrics", {}).items():
            if name in self.metrics:
                self.metrics[name][1].restore(saved)


@managed()  # BLAS threads per product while the loop runs
def evaluate(graph: Graph, params: Parameters, objective: Objective, data: Dataset, batch_size: int,
             prefix: str = "") -> dict[str, float]:
    logs = RunningLogs(graph, objective, prefix)
    penalty = WeightRules(graph, params).penalty()  # in the loss, as Keras' evaluate counts it
    with prefetched(data, batches(data.rows, batch_size)) as taken:
        for batch in taken:
            values, tape = graph.forward(params, batch.inputs, training=False)
            total, per_output, _ = losses(graph, objective, values, batch, tape.masks)
            logs.add(total + penalty, per_output, values, batch.targets, batch.rows)
    return logs.means()


def predict_batches(graph: Graph, params: Parameters, inputs: Mapping[str, Column],
                    batch_size: int) -> Generator[dict[str, np.ndarray], None, None]:
    """Outputs by name, batch after batch of the inputs' rows (each input: `len`, and a slice of rows as an
    ndarray); BLAS threads are managed until the last batch is out (or the generator is closed)."""
    rows = len(next(iter(inputs.values())))
    with managed():
        for index in batches(rows, batch_size):
            values, _ = graph.forward(params, {k: v[index] for k, v in inputs.items()}, training=False)
            yield {o: values[o] for o in graph.outputs}


def predict(graph: Graph, params: Parameters, inputs: Mapping[str, Column], batch_size: int) -> dict:
    parts: dict[str, list] = {o: [] for o in graph.outputs}
    for values in predict_batches(graph, params, inputs, batch_size):
        for o in graph.outputs:
            parts[o].append(values[o])
    return {o: np.concatenate(p) for o, p in parts.items()}


SPOOL_CHUNK_BYTES = 64 * 2 ** 20  # copied from a spool into the archive at a time


def write_predictions(graph: Graph, params: Parameters, inputs: Mapping[str, Column], batch_size: int,
                      path: str | Path) -> dict[str, tuple[int, ...]]:
    """The arrays `predict` returns, written to the .npz `path` without ever being held whole; their shapes.

    Outputs come out of a batch together but an archive's arrays go in one after another, so each output is
    spooled into a temporary .npy beside `path` (on the same disk), then copied into the archive; the spools
    are removed whatever happens (SIGTERM included)."""
    path = Path(path)
    rows = len(next(iter(inputs.values())))
    shapes = {o: (rows, *graph.shapes[o]) for o in graph.outputs}
    path.parent.mkdir(parents=True, exist_ok=True)
    with terminate_raises(), tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as folder:
        spools = {o: npy.open_memmap(Path(folder) / f"{i}.npy", mode="w+", dtype=np.float32, shape=shape)
                  for i, (o, shape) in enumerate(shapes.items())}
        start = 0
        with contextlib.closing(predict_batches(graph, params, inputs, batch_size)) as outputs:
            for values in outputs:
                stop = start + len(values[graph.outputs[0]])
                for o, spool in spools.items():
                    spool[start:stop] = values[o]
                start = stop
        write_members(path, ((o, spool.shape, spool.dtype, (part for _, part in row_chunks(spool, SPOOL_CHUNK_BYTES)))
                             for o, spool in spools.items()))
        del spools  # unmapped before their folder goes
    return shapes


@dataclass
class FitConfig:
    """How a run trains: its length and batches, what it reports, what it writes, when it stops."""
    epochs: int
    batch_size: int
    shuffle: bool = True
    seed: int = 0
    callbacks: list[Callback] = field(default_factory=list)
    progress: Optional[Progress] = None
    stop: Optional[Callable[[], bool]] = None  # asked after every batch: True stops the run there
    files: Optional[RunFiles] = None           # default: callbacks write in the current folder


class _Loop:
    """The epochs of one fit(): batches, the end of each epoch, and stopping on non-finite numbers."""

    def __init__(self, graph: Graph, params: Parameters, optimizer: Optimizer, objective: Objective,
                 config: FitConfig, state: TrainState):
        self.graph, self.params, self.optimizer, self.objective = graph, params, optimizer, objective
        self.config, self.state, self.progress = config, state, config.progress
        self.pending: list[str] = []  # callbacks' words at the end of an epoch, shown after its line
        self.rules = WeightRules(graph, params)
        self.trainer = Trainer(params, optimizer, state, list(config.callbacks),
                               config.files or RunFiles(Path.cwd()), self.pending.append, objective.upwards)
        self.say = self.progress.message if self.progress else (lambda text, always=False: None)

    def run(self, train: Dataset, validation: Optional[Dataset]) -> bool:
        """Train to the configured epoch; True when the run stopped before its end (interrupted or NaN)."""
        rng = np.random.default_rng()
        state = self.state
        while state.epoch < self.config.epochs:
            rng.bit_generator.state = state.rng
            order = shuffled_rows(rng, train.rows) if self.config.shuffle else None
            if self.train_epoch(train, order):
                return True
            stop_training = self.end_epoch(validation, rng)
            if stop_training:
                break
            if self.config.stop is not None and not state.finished and self.config.stop():
                self.stopped("interrupted", f"interrupted at {state.describe()}", state.epoch, None)
                return True
        return False

    def train_epoch(self, train: Dataset, order: Optional[np.ndarray]) -> bool:
        """The epoch's batches from where the run stands; True when it stopped within them."""
        state, progress = self.state, self.progress
        logs = RunningLogs(self.graph, self.objective)
        logs.restore(state.running)
        self.logs = logs
        if progress:
            progress.epoch_begin(state.epoch, state.step)
        indexes = itertools.islice(batches(train.rows, self.config.batch_size, order), state.step, None)
        with prefetched(train, indexes, shuffled=order is not None) as taken:
            for step, batch in enumerate(taken, start=state.step):
                if self.train_step(batch, step, logs):
                    return True
        return False

    def train_step(self, batch: Dataset, step: int, logs: RunningLogs) -> bool:
        """One batch of the epoch; True when the run stops after it."""
        state, progress, stop = self.state, self.progress, self.config.stop
        try:
            total, per_output, outputs = train_step(self.graph, self.params, self.optimizer, self.objective, batch,
                                                    Training(self.config.seed, (state.epoch, step)), self.rules)
            bad = None if math.isfinite(total) else total
        except NonFiniteGradients as e:
            total, bad = e.loss, "gradients"
        if bad is not None:
            self.non_finite(bad, total, step)
            return True
        logs.add(total, per_output, outputs, batch.targets, batch.rows)
        state.step = step + 1
        if progress:
            progress.batch_end(step, logs.means(), batch.rows)
        if stop is not None and stop():
            state.running = logs.state()
            self.trainer.write_run_files()
            self.stopped("interrupted", f"interrupted at {state.describe()}", state.epoch + 1, state.step)
            return True
        return False

    def non_finite(self, bad, total: float, step: int):
        """Stop before the step that would spoil the weights, saying what turned non-finite."""
        if bad == "gradients":  # the loss is finite, but its gradients are not
            kind = "too large for float32" if np.isfinite(self.params.trainable_grads).all() else "nan or inf"
            what = f"the gradients became {kind} (loss {total:.4g})"
        else:
            what = f"loss became {bad}"
        message = f"{what} at epoch {self.state.epoch + 1}, batch {step + 1}; stopped; the last good weights are kept"
        self.stopped("nan", message, self.state.epoch + 1, step + 1)
        self.say(message, always=True)

    def end_epoch(self, validation: Optional[Dataset], rng: np.random.Generator) -> bool:
        """Validation, callbacks and the run's files at the end of an epoch; True when a callback stops the run."""
        state, trainer, epoch = self.state, self.trainer, self.state.epoch
        epoch_logs = self.logs.means()
        if validation is not None:
            epoch_logs.update(evaluate(self.graph, self.params, self.objective, validation, self.config.batch_size,
                                       prefix="val_"))
        if self.optimizer.schedule is not None:  # the rate of the next step, as ReduceLROnPlateau logs its own
            epoch_logs["learning_rate"] = self.optimizer.learning_rate
        state.history.append(epoch_logs)
        stop_training = False
        for cb in trainer.callbacks:  # every callback sees the epoch, as in Keras, even after one said stop
            stop_training = bool(cb.on_epoch_end(epoch, epoch_logs)) or stop_training
        state.epoch, state.step, state.running, state.rng = epoch + 1, 0, {}, rng.bit_generator.state
        state.finished = stop_training or state.epoch >= self.config.epochs
        if stop_training:
            self.stopped("early_stopping", f"stopped early after epoch {epoch + 1}", epoch + 1, None)
        for cb in trainer.callbacks:
            cb.after_epoch(epoch, epoch_logs)
        trainer.write_run_files()
        if self.progress:
            self.progress.epoch_end(epoch_logs)
        for text in self.pending:
            self.say(text)
        self.pending.clear()
        return stop_training

    def stopped(self, reason: str, message: str, epoch: int, batch: Optional[int]):
        """Why the run ends early; `epoch` counts from 1, `batch` is the batches of it done (None: all)."""
        self.state.stopped = {"reason": reason, "message": message, "epoch": epoch, "batch": batch}


@managed()
def fit(graph: Graph, params: Parameters, optimizer: Optimizer, objective: Objective, train: Dataset,
        validation: Optional[Dataset], config: FitConfig, state: Optional[TrainState] = None) -> list[dict[str, float]]:
    """Train up to epoch `config.epochs`; one dict of logs per epoch (training means, then `val_` entries).

    `state` continues a run where it stopped (epoch, batch, shuffling, running sums, callbacks); the weights
    and optimizer state are the caller's to restore. `config.stop` is asked after every batch: when it says
    so, the run stops there and its checkpoint is written. A loss or gradient that turns NaN or infinite stops
    the run before the step that would spoil the weights. Why a run stopped early is in `state.stopped`."""
    if state is None:
        state = TrainState.fresh(config.seed, config.epochs, config.batch_size)
    state.epochs, state.finished, state.stopped = config.epochs, False, None
    loop = _Loop(graph, params, optimizer, objective, config, state)
    loop.trainer.begin()
    # numbers that overflow are caught (the loss or the gradients turn non-finite) and said, not warned about
    with np.errstate(over="ignore", invalid="ignore"):
        if loop.run(train, validation):
            return state.history
    loop.trainer.say = loop.say
    loop.trainer.end()
    return state.history
