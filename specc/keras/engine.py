"""`specc train --engine keras`: the spec trained by Keras 3's `fit`, data parallel over every device JAX
sees (several GPUs or TPUs; several hosts through JAX's distributed initialization), writing the same run
folder as the numba engine: weights.npz under specc's keys, history.csv with the same columns, spec.yaml,
and a checkpoint to --resume from at the end of every epoch.

It starts from specc's initial weights (the spec's seed) or the given ones, draws the same shuffled order
per epoch as the numba engine, and feeds the data batch by batch (the spec's batch size is the global batch,
split over the devices). A batch whose rows do not divide among the devices is padded with rows of zero
weight, the real rows weighted up so that the loss and its gradients are the batch's mean as specc computes
it (metrics count the padding rows: only the last batch of an epoch can have them)."""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import Problem, SpecError
from ..io.data import Dataset
from ..io.weights import STATE, WEIGHTS, save_arrays, write_text
from ..train.callbacks import history_csv
from ..train.checkpoint import FORMAT, OPTIMIZER, Checkpoint, TrainState
from ..train.loop import shuffled_rows
from ..train.objective import history_names, metric_names
from ..train.run import RunFolder, StopOnSignal, check_unfinished, resume_epochs
from . import import_keras
from .export import arguments, get_weights, keras_class, keras_model

import_keras()  # Keras on JAX, or KerasMissing saying what to install: before Keras is imported
import keras  # noqa: E402

ENGINE = "keras"
KERAS_SLOTS = OPTIMIZER + "keras/"  # the Keras optimizer's variables in a checkpoint, in its order
MULTI_HOST = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS")


def distribute(devices: Optional[int]) -> list[str]:
    """Data parallelism over the local devices (the first `devices` of them), across hosts when the
    environment names a coordinator (KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES and
    KERAS_DISTRIBUTION_PROCESS_ID, or JAX's JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID).
    Returns the devices used."""
    if any(name in os.environ for name in MULTI_HOST):
        keras.distribution.initialize()
    found = keras.distribution.list_devices()
    if devices is not None and devices > len(found):
        raise SpecError([Problem(f"--devices {devices}: Keras sees only {len(found)} device(s): {', '.join(found)}")])
    chosen = found[:devices] if devices else found
    if len(chosen) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
    return chosen


def _process() -> tuple[int, int]:
    """This host's index among the hosts, and how many there are."""
    import jax
    return jax.process_index(), jax.process_count()


class Batches(keras.utils.PyDataset):
    """A Dataset's batches for Keras, in the numba engine's order: shuffled per epoch from the run's generator
    (its state given), or in row order. Each host takes its share of every global batch."""

    def __init__(self, data: Dataset, batch_size: int, net, shuffle_state=None, devices: int = 1):
        super().__init__()
        self.data, self.batch_size, self.devices = data, batch_size, devices
        self.input_names = [t.name for t in net.inputs]
        self.output_names = list(net.output_names)
        self.rng = None
        if shuffle_state is not None:
            self.rng = np.random.default_rng()
            self.rng.bit_generator.state = shuffle_state
        self.order = self._draw()

    def _draw(self):
        return None if self.rng is None else shuffled_rows(self.rng, self.data.rows)

    @property
    def shuffle_state(self):
        """The generator's state for the next epoch's order (what the checkpoint keeps)."""
        return None if self.rng is None else self.rng.bit_generator.state

    def __len__(self):
        return -(-self.data.rows // self.batch_size)

    def __getitem__(self, i):
        index = np.arange(i * self.batch_size, min((i + 1) * self.batch_size, self.data.rows))
        if self.order is not None:
            index = np.sort(self.order[index])
        host, hosts = _process()
        index = index[host::hosts]
        batch = self.data.take(index)
        weights = np.ones(len(index), np.float32) if batch.sample_weight is None else batch.sample_weight
        pad = -len(index) % self.devices
        if pad:
            take = np.concatenate([np.arange(len(index)), np.arange(pad) % len(index)])
            batch = batch.take(take)
            weights = np.concatenate([weights * (len(take) / len(index)), np.zeros(pad, np.float32)])
        xs = [batch.inputs[name] for name in self.input_names]
        ys = [batch.targets[name] for name in self.output_names]
        x = xs[0] if len(xs) == 1 else xs
        # always weighted: Keras fixes the structure of every batch from the first one
        if len(ys) == 1:
            return x, ys[0], weights
        return x, ys, [weights] * len(ys)

    def on_epoch_end(self):
        self.order = self._draw()


def keras_callback(settings, files: "RunFiles"):
    """Keras' callback of a spec's `fit.callbacks` entry: the Keras class of its name with its arguments;
    those that write files write specc's (a weights file or checkpoint, a history CSV) in the run folder."""
    if settings.type == "model_checkpoint":
        return _ModelCheckpoint(settings, files)
    if settings.type == "csv_logger":
        return _CSVLogger(settings, files)
    return keras_class(keras.callbacks, settings.type)(**arguments(settings))


class RunFiles:
    """The run's files and state as the keras engine keeps them up to date."""

    def __init__(self, run: RunFolder, model, state: TrainState, columns: list[str]):
        self.run, self.model, self.state, self.columns = run, model, state, columns
        self.net: Any = None  # the Keras model, once built
        self.batches: Optional[Batches] = None

    def weights(self) -> dict[str, np.ndarray]:
        return get_weights(self.model.graph, self.net)

    def checkpoint_arrays(self) -> dict[str, np.ndarray]:
        import json
        optimizer = self.net.optimizer
        arrays = {WEIGHTS + k: v for k, v in self.weights().items()}
        arrays.update({f"{KERAS_SLOTS}{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
        arrays[OPTIMIZER + "iterations"] = np.array(int(optimizer.iterations.numpy()), np.int64)
        arrays[OPTIMIZER + "learning_rate"] = np.array(float(optimizer.learning_rate), np.float64)
        arrays[STATE] = np.array(json.dumps({"format": FORMAT, **self.state.as_json()}))
        return arrays

    def epoch_logs(self, logs: dict) -> dict[str, float]:
        """Keras' logs of an epoch as specc logs them: its columns, in its order."""
        logs = dict(logs)
        if "learning_rate" in self.columns:
            logs["learning_rate"] = float(self.net.optimizer.learning_rate)
        return {name: float(logs[name]) for name in self.columns if name in logs}


def _monitor_improved(settings, logs: dict, best: Optional[float]) -> tuple[bool, Optional[float]]:
    value = logs.get(settings.monitor)
    if value is None:
        return False, best
    upwards = settings.mode == "max" or (settings.mode == "auto" and "acc" in settings.monitor)
    better = best is None or (value > best if upwards else value < best)
    return better, value if better else best


class _RunFilesCallback(keras.callbacks.Callback):
    """After every epoch: the history, the run's state and its checkpoint (Keras' on_epoch_end)."""

    def __init__(self, files: RunFiles, stop: Callable[[], bool], epochs: int):
        super().__init__()
        self.files, self.stop, self.epochs = files, stop, epochs
        self.interrupted = False

    def on_train_batch_end(self, batch, logs=None):
        if self.stop():
            self.interrupted = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        files, state = self.files, self.files.state
        if self.interrupted:  # a part of an epoch is not kept: the run resumes at the start of this epoch
            state.stopped = {"reason": "interrupted", "message": f"interrupted in epoch {epoch + 1}",
                             "epoch": epoch + 1, "batch": None}
            return
        state.history.append(files.epoch_logs(logs or {}))
        state.epoch, state.step = epoch + 1, 0
        if files.batches is not None and files.batches.shuffle_state is not None:
            state.rng = files.batches.shuffle_state
        state.finished = state.epoch >= self.epochs
        save_arrays(files.run.checkpoint, files.checkpoint_arrays())
        write_text(files.run.history, history_csv(state.history))


class _ModelCheckpoint(keras.callbacks.Callback):
    """specc's model_checkpoint: a checkpoint or weights file in the run folder, after every epoch or the best."""

    def __init__(self, settings, files: RunFiles):
        super().__init__()
        self.settings, self.files, self.best = settings, files, None

    def on_epoch_end(self, epoch, logs=None):
        logs = self.files.epoch_logs(logs or {})
        improved, self.best = _monitor_improved(self.settings, logs, self.best)
        if self.settings.save_best_only and not improved:
            return
        path = self.files.run.path / self.settings.path.format(epoch=epoch + 1, **logs)
        save_arrays(path, self.files.weights() if self.settings.save_weights_only else self.files.checkpoint_arrays())


class _CSVLogger(keras.callbacks.Callback):
    """specc's csv_logger: the history as specc writes it, in the run folder."""

    def __init__(self, settings, files: RunFiles):
        super().__init__()
        self.settings, self.files = settings, files
        self.rows: list[dict[str, float]] = []

    def on_train_begin(self, logs=None):
        self.rows = list(self.files.state.history)  # a resumed run's epochs before this one

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append(self.files.epoch_logs(logs or {}))
        write_text(self.files.run.path / self.settings.filename, history_csv(self.rows, self.settings.separator))


def _resumable(checkpoint: Checkpoint):
    if checkpoint.state.run.get("engine") != ENGINE:
        raise SpecError([Problem("the run was trained by the numba engine; resume it without --engine keras",
                                 file=str(checkpoint.path))])
    if checkpoint.state.step:
        raise SpecError([Problem("the run stopped within an epoch; resume it without --engine keras",
                                 file=str(checkpoint.path))])


def _restore_optimizer(net, checkpoint: Checkpoint):
    optimizer = net.optimizer
    optimizer.build(net.trainable_variables)
    saved = [checkpoint.optimizer[k] for k in sorted(checkpoint.optimizer) if k.startswith("keras/")]
    if len(saved) != len(optimizer.variables):
        raise SpecError([Problem(f"the checkpoint holds {len(saved)} optimizer variables; the spec's optimizer has "
                                 f"{len(optimizer.variables)}", file=str(checkpoint.path))])
    for variable, value in zip(optimizer.variables, saved):
        variable.assign(value)


def train_with_keras(spec: Optional[str], folder: Optional[Path], resume: Optional[Path], epochs: Optional[int],
                     batch_size: Optional[int], weights: Optional[str], overwrite: bool, devices: Optional[int],
                     say: Callable[[str], None], quiet: bool) -> tuple[RunFolder, TrainState]:
    """`specc train --engine keras`: a new run in `folder` (default runs/<name>) or the run in `resume`
    continued. Returns the run folder and where the run stands (`state.stopped` when interrupted)."""
    from ..model import data_identity, load
    from ..spec import render
    from ..train.adapt import adapt
    used = distribute(devices)
    checkpoint = None
    if resume is not None:
        checkpoint, spec = RunFolder(resume).resumable(spec)
        _resumable(checkpoint)
    assert spec is not None, "the command asks for a spec or a run to resume"
    model = load(spec)
    run = RunFolder(resume or folder or Path("runs") / model.name)
    train, validation = model.spec_data()
    fit_spec = model.spec.fit
    if fit_spec.class_weight is not None:
        from ..io.data import class_weights
        train = class_weights(train, model.graph.outputs[0], fit_spec.class_weight)
    if checkpoint is not None:
        state = checkpoint.state
        epochs = epochs or resume_epochs(model.spec, state)
        check_unfinished(checkpoint, epochs)
        model.load_weights(checkpoint.path)
    else:
        epochs = epochs or fit_spec.epochs
        state = TrainState.fresh(model.spec.seed, epochs, batch_size or fit_spec.batch_size)
        state.run = {"spec": str(model.path.resolve()), "rendered": render(model.spec), "rows": train.rows,
                     **data_identity(train), "engine": ENGINE}
        if weights:
            model.load_weights(weights)
        adapt(model.graph, model.params, train)
    state.epochs, state.finished, state.stopped = epochs, False, None
    outputs = model.graph.outputs
    extra = tuple(dict.fromkeys((*model.spec.compile.optimizer.logs,
                                 *(name for c in fit_spec.callbacks for name in c.logs))))
    columns = history_names(outputs, metric_names(model.spec.compile, outputs), validation is not None, extra)
    run.make_writable()
    with run.locked():
        if checkpoint is None:
            run.check_new(overwrite)
        run.remove_temporaries()
        say(f"Training {model.name} with Keras on {len(used)} device(s) ({', '.join(used)}): {train.rows} rows"
            + (f", validating on {validation.rows}" if validation is not None else "")
            + f", epochs {state.epoch + 1} to {epochs} in global batches of {state.batch_size}")
        with run.replacing(overwrite and checkpoint is None), run.environment_errors(), StopOnSignal() as stop:
            if checkpoint is None or not run.spec.is_file():
                run.write_spec(model.spec)
            keras.utils.set_random_seed(model.spec.seed)
            net = keras_model(model)
            if checkpoint is not None:
                _restore_optimizer(net, checkpoint)
            files = RunFiles(run, model, state, columns)
            files.net = net
            files.batches = Batches(train, state.batch_size, net, state.rng if fit_spec.shuffle else None,
                                    len(used))
            valid = None if validation is None else Batches(validation, state.batch_size, net, None, len(used))
            run_files = _RunFilesCallback(files, stop, epochs)
            callbacks = [keras_callback(c, files) for c in fit_spec.callbacks]
            net.fit(files.batches, validation_data=valid, epochs=epochs, initial_epoch=state.epoch, shuffle=False,
                    callbacks=[run_files, *callbacks], verbose=0 if quiet else 2)
            if state.stopped is None:
                if state.epoch < epochs:  # a callback (EarlyStopping) ended the run
                    state.stopped = {"reason": "early_stopping", "message": f"stopped early after epoch "
                                     f"{state.epoch}", "epoch": state.epoch, "batch": None}
                    state.finished = True
                    save_arrays(run.checkpoint, files.checkpoint_arrays())
                save_arrays(run.weights, files.weights())
    if state.stopped is not None and state.stopped["reason"] == "interrupted":
        say(f"Interrupted; the run's checkpoint is at the end of epoch {state.epoch}.\n"
            f"Resume with: specc train --engine keras --resume {shlex.quote(str(run.path))}")
    return run, state
