"""Callbacks with Keras' names and semantics: early stopping, checkpoints, learning-rate plateaus, CSV logs.

A callback sees the end of every epoch and may stop training; it acts on the weights (one flat array) and
the optimizer through the Trainer it is bound to. Its state (what it counts and remembers) is saved in
checkpoints, so a resumed run behaves as if it had never stopped.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Annotated, Callable, ClassVar, Literal, Optional

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt

from ..io.weights import save_arrays, write_text
from ..registry import Config, Registry
from .checkpoint import TrainState, checkpoint_arrays
from .run import CHECKPOINT, HISTORY, RunFiles
from .schedules import ScheduleSettings

Mode = Literal["auto", "min", "max"]
MONITOR = Field("val_loss", description="A name the run logs: loss, val_loss, accuracy, val_accuracy, ...")
MODE: Mode = Field("auto", description="min, max, or auto: max for names with 'acc' in them, else min.")


class CallbackSettings(Config):
    """A callback as the spec's `fit.callbacks` gives it; `make()` the callback that acts on a run.

    `logs`: names it adds to every epoch's logs. `files()`: file names it writes in the run folder, as
    given (a pattern may hold {epoch} and logged names)."""
    logs: ClassVar[tuple[str, ...]] = ()

    def files(self) -> dict[str, str]:
        """{key of the setting: the file name it gives}."""
        return {}

    def optimizer_problem(self, optimizer) -> Optional[str]:
        """Why it cannot act on this optimizer (its settings), or None."""
        return None

    def make(self) -> "Callback":
        raise NotImplementedError


CALLBACKS: Registry[type[CallbackSettings]] = Registry("callback")


@CALLBACKS.register(aliases=("EarlyStopping",))
class EarlyStoppingSettings(CallbackSettings):
    """Stop when the monitored quantity stops improving (Keras' EarlyStopping)."""
    type: Literal["early_stopping"]
    monitor: str = MONITOR
    min_delta: NonNegativeFloat = 0.0
    patience: NonNegativeInt = 0
    mode: Mode = MODE
    baseline: Optional[float] = None
    restore_best_weights: bool = False
    start_from_epoch: NonNegativeInt = 0

    def make(self):
        return EarlyStopping(self)


@CALLBACKS.register(aliases=("ModelCheckpoint",))
class ModelCheckpointSettings(CallbackSettings):
    """Save a checkpoint (weights, optimizer state, progress) after every epoch, or only when it is the best."""
    type: Literal["model_checkpoint"]
    filepath: Optional[str] = Field(
        None, description="Relative to the run folder; may use {epoch} and logged names, e.g. "
                          "'best.{epoch:03d}.npz'. Default: best.npz with save_best_only, else checkpoint.npz.")
    monitor: str = MONITOR
    mode: Mode = MODE
    save_best_only: bool = False
    save_weights_only: bool = Field(False, description="Write a plain weights file instead of a checkpoint.")

    @property
    def path(self) -> str:
        return self.filepath or ("best.npz" if self.save_best_only else CHECKPOINT)

    def files(self):
        return {"filepath": self.path}

    def make(self):
        return ModelCheckpoint(self)


@CALLBACKS.register(aliases=("ReduceLROnPlateau",))
class ReduceLROnPlateauSettings(CallbackSettings):
    """Multiply the learning rate by `factor` when the monitored quantity stops improving."""
    type: Literal["reduce_lr_on_plateau"]
    monitor: str = MONITOR
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: NonNegativeInt = 10
    mode: Mode = MODE
    min_delta: NonNegativeFloat = 1e-4
    cooldown: NonNegativeInt = 0
    min_lr: NonNegativeFloat = 0.0
    logs: ClassVar[tuple[str, ...]] = ("learning_rate",)

    def optimizer_problem(self, optimizer):
        rate = optimizer.learning_rate
        if not isinstance(rate, ScheduleSettings):
            return None
        return (f"reduce_lr_on_plateau sets the learning rate, but the optimizer's learning_rate is a schedule "
                f"({rate.type}), which cannot be set; give the optimizer a number as learning_rate, or leave "
                "this callback out")

    def make(self):
        return ReduceLROnPlateau(self)


@CALLBACKS.register(aliases=("CSVLogger",))
class CSVLoggerSettings(CallbackSettings):
    """Write the history after every epoch (the run folder's history.csv already is one)."""
    type: Literal["csv_logger"]
    filename: str = HISTORY
    separator: Annotated[str, Field(min_length=1, max_length=1)] = ","

    def files(self):
        return {"filename": self.filename}

    def make(self):
        return CSVLogger(self)


@CALLBACKS.register(aliases=("TerminateOnNaN",))
class TerminateOnNaNSettings(CallbackSettings):
    """Stop when the loss becomes NaN or infinite. specc always does; the entry is accepted for Keras users."""
    type: Literal["terminate_on_nan"]

    def make(self):
        return TerminateOnNaN(self)


class Trainer:
    """What callbacks act on: the weights, the optimizer, the run's state, and where files go."""

    def __init__(self, params, optimizer, state: TrainState, callbacks: list, files: RunFiles,
                 say: Callable[[str], None], upwards: Callable[[str], Optional[bool]] = lambda name: None):
        self.params, self.optimizer, self.state = params, optimizer, state
        self.callbacks, self.files, self.say = callbacks, files, say
        self.upwards = upwards  # whether a larger value of a logged name is better (None: unknown)

    def resolve(self, path: str) -> Path:
        """A callback's file in the run folder; validation refuses names that would leave it."""
        target = self.files.folder / path
        if not target.resolve().is_relative_to(self.files.folder.resolve()):
            raise AssertionError(f"{path} is outside the run folder")
        return target

    def callback_arrays(self) -> dict[str, np.ndarray]:
        return {f"{i}/{k}": v for i, cb in enumerate(self.callbacks) for k, v in cb.get_arrays().items()}

    def save(self, path: Path, weights_only: bool = False):
        """A checkpoint of the run as it is now (or only its weights)."""
        if weights_only:
            save_arrays(path, self.params.as_dict())
            return
        if self.files.checkpoint is not None and path.resolve() == self.files.checkpoint.resolve():
            return  # the run's own checkpoint is written after every epoch anyway
        save_arrays(path, self._checkpoint())

    def _checkpoint(self) -> dict[str, np.ndarray]:
        self.state.callbacks = [cb.get_state() for cb in self.callbacks]
        return checkpoint_arrays(self.params, self.optimizer, self.state, self.callback_arrays())

    def write_run_files(self):
        """The checkpoint to resume from and the history so far, each replaced atomically."""
        if self.files.checkpoint is not None:
            save_arrays(self.files.checkpoint, self._checkpoint())
        if self.files.history is not None:
            write_text(self.files.history, history_csv(self.state.history))

    def begin(self):
        """Every callback bound and reset (Keras' train begin), then given its state from a checkpoint."""
        for cb in self.callbacks:
            cb.bind(self)
            cb.on_train_begin()
        arrays = self.state.callback_arrays
        for i, (cb, saved) in enumerate(zip(self.callbacks, self.state.callbacks)):
            mine = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[0] == str(i)}
            cb.set_state(saved, mine)

    def end(self):
        """Keras' train end: EarlyStopping restores its best weights."""
        for cb in self.callbacks:
            cb.on_train_end()


def history_csv(history: list[dict], separator: str = ",") -> str:
    """One row per epoch (numbered from 1), every logged name a column; floats as Python writes them."""
    buffer = io.StringIO()
    columns = ["epoch"]
    for logs in history:
        columns += [k for k in logs if k not in columns]
    writer = csv.DictWriter(buffer, columns, delimiter=separator, lineterminator="\n")
    writer.writeheader()
    for epoch, logs in enumerate(history, 1):
        writer.writerow({"epoch": epoch, **{k: repr(v) for k, v in logs.items()}})
    return buffer.getvalue()


class Callback:
    """Keras' hooks. `on_epoch_end` returns True to stop training; files are written in `after_epoch`, once
    every callback has seen the epoch, so a checkpoint holds every callback's state for that epoch."""
    trainer: Trainer

    def __init__(self, config=None):
        self.c = config

    def bind(self, trainer: Trainer):
        self.trainer = trainer
        if hasattr(self, "maximize"):  # a callback that watches `monitor`: its metric knows which way is better
            self.maximize = _maximize(self.c.mode, self.c.monitor, trainer.upwards(self.c.monitor))

    def on_train_begin(self):
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        return False

    def after_epoch(self, epoch: int, logs: dict):
        pass

    def on_train_end(self):
        pass

    def get_state(self) -> dict:
        """JSON-able state for checkpoints."""
        return {}

    def get_arrays(self) -> dict[str, np.ndarray]:
        """Array state for checkpoints."""
        return {}

    def set_state(self, state: dict, arrays: dict[str, np.ndarray]):
        pass


def state_problems(callbacks: list[Callback], states: list, arrays: dict[str, np.ndarray], weights: int) -> list[str]:
    """What is wrong with the callbacks' states a checkpoint holds (a hand-edited one), one sentence each: each
    state has the fields a fresh callback of its kind has, each a number or null, and a kept copy of the weights
    has one value per weight."""
    if len(states) != len(callbacks):
        return [f"holds the state of {len(states)} callback(s); the spec has {len(callbacks)}"]
    problems = []
    for i, (callback, state) in enumerate(zip(callbacks, states)):
        name = f"callback {i} ({callback.c.type})"
        expected = callback.get_state()
        if not isinstance(state, dict) or set(state) != set(expected):
            problems.append(f"has a damaged state of {name}: it needs the fields {', '.join(sorted(expected))}")
            continue
        problems += [f"has a damaged state of {name}: '{key}' is {value!r}, not a number"
                     for key, value in state.items() if value is not None and type(value) not in (int, float)]
        problems += [f"has a damaged state of {name}: array '{key}' has shape {array.shape}, not ({weights},)"
                     for key, array in arrays.items() if key.startswith(f"{i}/") and array.shape != (weights,)]
    return problems


def _maximize(mode: str, monitor: str, upwards: Optional[bool] = None) -> bool:
    """Keras' mode `auto`: the way the monitored metric improves (up for accuracy, AUC, precision...; down
    for losses and errors); for a name of unknown direction, up when it has 'acc' in it."""
    if mode != "auto":
        return mode == "max"
    return upwards if upwards is not None else "acc" in monitor


def _show(value: Optional[float]) -> str:
    return "none yet" if value is None else f"{value:.5g}"


class EarlyStopping(Callback):
    def __init__(self, config: EarlyStoppingSettings):
        self.c = config
        self.maximize = _maximize(config.mode, config.monitor)
        self.on_train_begin()

    def improved(self, value: float, reference: Optional[float]) -> bool:
        if reference is None:
            return True
        if self.maximize:
            return value - self.c.min_delta > reference
        return value + self.c.min_delta < reference

    def on_train_begin(self) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best: Optional[float] = None
        self.best_weights: Optional[np.ndarray] = None

    def on_epoch_end(self, epoch, logs):
        current = logs.get(self.c.monitor)
        if current is None or epoch < self.c.start_from_epoch:
            return False
        if self.c.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.trainer.params.values.copy(), epoch
        self.wait += 1
        if self.improved(current, self.best):
            self.best, self.best_epoch = float(current), epoch
            if self.c.restore_best_weights:
                self.best_weights = self.trainer.params.values.copy()
            if self.c.baseline is None or self.improved(current, self.c.baseline):
                self.wait = 0
            return False
        if self.wait >= self.c.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.say(f"Epoch {epoch + 1}: early stopping ({self.c.monitor} has not improved on "
                             f"{_show(self.best)} for {self.wait} epoch(s))")
            return True
        return False

    def on_train_end(self):
        if self.c.restore_best_weights and self.best_weights is not None:
            self.trainer.say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.trainer.params.values[...] = self.best_weights

    def get_state(self):
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best,
                "best_epoch": self.best_epoch}

    def get_arrays(self):
        return {} if self.best_weights is None else {"best_weights": self.best_weights}

    def set_state(self, state, arrays):
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.best_weights = arrays.get("best_weights")


class ModelCheckpoint(Callback):
    def __init__(self, config: ModelCheckpointSettings):
        self.c = config
        self.maximize = _maximize(config.mode, config.monitor)
        self.best: Optional[float] = None
        self.due: Optional[Path] = None

    def on_train_begin(self):
        self.best, self.due = None, None

    def on_epoch_end(self, epoch, logs):
        path = self.trainer.resolve(self.c.path.format(epoch=epoch + 1, **logs))
        if not self.c.save_best_only:
            self.due = path
            return False
        current = logs.get(self.c.monitor)
        if current is None or math.isnan(current):
            return False
        if self.best is None or (current > self.best if self.maximize else current < self.best):
            self.trainer.say(f"Epoch {epoch + 1}: {self.c.monitor} improved from {_show(self.best)} to "
                             f"{current:.5g}, saving {path}")
            self.best, self.due = float(current), path
        return False

    def after_epoch(self, epoch, logs):
        if self.due is not None:
            self.trainer.save(self.due, weights_only=self.c.save_weights_only)
            self.due = None

    def get_state(self):
        return {"best": self.best}

    def set_state(self, state, arrays):
        self.best = state["best"]


class ReduceLROnPlateau(Callback):
    def __init__(self, config: ReduceLROnPlateauSettings):
        self.c = config
        self.maximize = _maximize(config.mode, config.monitor)
        self.on_train_begin()

    def on_train_begin(self):
        self.best = -math.inf if self.maximize else math.inf
        self.wait = self.cooldown_counter = 0

    def improved(self, value: float) -> bool:
        if self.maximize:
            return value > self.best + self.c.min_delta
        return value < self.best - self.c.min_delta

    def on_epoch_end(self, epoch, logs):
        optimizer = self.trainer.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.c.monitor)
        if current is None:
            return False
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(current):
            self.best, self.wait = float(current), 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.c.patience:
                old = float(optimizer.learning_rate)
                if old > np.float32(self.c.min_lr):
                    optimizer.learning_rate = max(old * self.c.factor, self.c.min_lr)
                    self.trainer.say(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                                     f"{optimizer.learning_rate:.6g}.")
                    self.cooldown_counter, self.wait = self.c.cooldown, 0
        return False

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state, arrays):
        self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]


class CSVLogger(Callback):
    def after_epoch(self, epoch, logs):
        path = self.trainer.resolve(self.c.filename)
        own = self.trainer.files.history
        if own is not None and path.resolve() == own.resolve() and self.c.separator == ",":
            return  # the run's history.csv is written after every epoch anyway
        write_text(path, history_csv(self.trainer.state.history, self.c.separator))


class TerminateOnNaN(Callback):
    """Training always stops on a NaN or infinite loss, before the bad step reaches the weights."""

