"""A run folder (weights.npz, checkpoint.npz, history.csv, spec.yaml) and stopping a run cleanly on a signal."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import Problem, SpecError
from .checkpoint import Checkpoint, load_checkpoint

CHECKPOINT, WEIGHTS, HISTORY, SPEC = "checkpoint.npz", "weights.npz", "history.csv", "spec.yaml"
RUN_FILES = (CHECKPOINT, WEIGHTS, HISTORY)
PREVIOUS = ".overwritten"  # an overwritten run's files, until the new run has its weights
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what weights.write_atomically leaves if killed


@dataclass
class RunFiles:
    """Where a run writes: callbacks' relative paths resolve in `folder`; the checkpoint to resume from and
    history.csv are rewritten after every epoch when given."""
    folder: Path
    checkpoint: Optional[Path] = None
    history: Optional[Path] = None


@dataclass
class RunFolder:
    """A run's folder and every file name in it: what `specc train` writes, checks and resumes."""
    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def history(self) -> Path:
        return self.path / HISTORY

    @property
    def spec(self) -> Path:
        return self.path / SPEC

    def files(self) -> RunFiles:
        return RunFiles(self.path, self.checkpoint, self.history)

    def write_spec(self, spec):
        import yaml

        from ..io.weights import write_text
        from ..spec import render
        write_text(self.spec, yaml.safe_dump(render(spec), sort_keys=False))

    def make_writable(self):
        """The folder exists and takes files, or a SpecError says why not, before anything is trained."""
        probe = self.path / f".specc-probe-{os.getpid()}"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise SpecError([Problem(f"cannot write the run's files here: {e.strerror or e}", (), str(self.path))]) \
                from None

    @contextlib.contextmanager
    def locked(self):
        """One `specc train` at a time in a folder: an advisory lock on the folder itself, which the system
        releases when the process ends, however it ends (so a crash leaves no stale lock)."""
        try:
            import fcntl
        except ImportError:  # no advisory locks on this system
            yield
            return
        folder = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise SpecError([Problem("another `specc train` is running in this folder; wait for it to end, or "
                                         "choose another folder with --out", (), str(self.path))]) from None
            yield
        finally:
            os.close(folder)

    @contextlib.contextmanager
    def replacing(self, overwrite: bool):
        """With --overwrite, the old run's files are moved aside and kept until the new run has written its
        weights; should it end without them (an error, a second Ctrl-C), they come back."""
        present = [name for name in (*RUN_FILES, SPEC) if (self.path / name).is_file()] if overwrite else []
        aside = self.path / PREVIOUS
        if present:
            shutil.rmtree(aside, ignore_errors=True)
            aside.mkdir()
            for name in present:
                os.replace(self.path / name, aside / name)
        try:
            yield
        except BaseException:
            if present and not self.weights.is_file():
                for name in (*RUN_FILES, SPEC):
                    (self.path / name).unlink(missing_ok=True)
                for name in present:
                    os.replace(aside / name, self.path / name)
                aside.rmdir()
            raise
        if self.weights.is_file():  # the new run (or a resumed one) has its weights: the old run can go
            shutil.rmtree(aside, ignore_errors=True)

    @contextlib.contextmanager
    def environment_errors(self):
        """A full disk or a folder that stops taking files is the user's environment, not a bug: say which
        file, and what the run kept."""
        try:
            yield
        except BrokenPipeError:
            raise  # not a file of the run: the reader of the output went away
        except OSError as e:
            if self.checkpoint.is_file():
                kept = (f"the run's last checkpoint is kept; resume it with `specc train --resume {self.path}` once "
                        "there is room")
            else:
                kept = "the run had written no checkpoint yet"
            raise SpecError([Problem(f"cannot write: {e.strerror or e}; {kept}", (), str(e.filename or self.path))]) \
                from None

    def complete(self, model, checkpoint: Checkpoint):
        """A run that stopped between its last checkpoint and its weights file: write the weights from it, as
        the run's end would have (the callbacks' train end: EarlyStopping restores its best weights)."""
        from .callbacks import Trainer  # callbacks name this module's files: imported here, not at the top
        model.load_weights(checkpoint.path)
        callbacks = [settings.make() for settings in model.spec.fit.callbacks]
        trainer = Trainer(model.params, model.optimizer, checkpoint.state, callbacks, self.files(), lambda _: None)
        trainer.begin()
        trainer.end()
        with self.environment_errors():
            model.save_weights(self.weights)
            if not self.spec.is_file():
                self.write_spec(model.spec)

    def check_new(self, overwrite: bool):
        """A folder that holds a run is not trained into again without `overwrite`; with it, the old run's
        files are moved aside first (replacing()), so a stale checkpoint can never be resumed as if it were the
        new run's."""
        present = [name for name in RUN_FILES if (self.path / name).is_file()]
        if not present:
            return
        if overwrite:
            return  # replacing() moves them aside
        unfinished = None
        if self.checkpoint.is_file():
            try:
                state = load_checkpoint(self.checkpoint).state
                if not state.finished and state.stopped is None:
                    unfinished = state
            except SpecError:
                pass
        if unfinished is not None and not self.weights.is_file():
            message = (f"holds an unfinished run (stopped at {unfinished.describe()}); continue it with "
                       f"`specc train --resume {self.path}`, or pass --overwrite to start over")
        else:
            message = (f"already holds a run ({', '.join(present)}); pass --overwrite to replace it, "
                       f"or choose another folder with --out")
        raise SpecError([Problem(message, (), str(self.path))])

    def resumable(self, spec: Optional[str]) -> tuple[Checkpoint, str]:
        """The run's checkpoint, and the spec to resume it with (by default the one it was started from)."""
        checkpoint = load_checkpoint(self.checkpoint)
        if spec is None:
            spec = checkpoint.state.run.get("spec", "")
            if not Path(spec).is_file():
                raise SpecError([Problem(f"the run's spec {spec} is gone; give it: specc train SPEC --resume "
                                         f"{self.path}", file=str(checkpoint.path))])
        return checkpoint, spec

    def remove_temporaries(self) -> list[Path]:
        """Temporary files an interrupted atomic write left behind (never a result: results are renamed)."""
        removed = []
        if self.path.is_dir():
            for path in self.path.iterdir():
                if TEMPORARY.match(path.name) and path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed


def resume_epochs(spec, state) -> int:
    """How many epochs a resumed run trains to: the run's own number, unless the spec's `fit.epochs` was
    changed since it started."""
    started_with = state.run.get("rendered", {}).get("fit", {}).get("epochs")
    return spec.fit.epochs if spec.fit.epochs != started_with else state.epochs


def check_same_run(checkpoint: Checkpoint, rendered_spec: dict, rows: int, batch_size: Optional[int],
                   files: dict[str, str], fingerprint: Callable[[], str]):
    """Resuming continues the same run: the spec (but for `fit.epochs`), the data (rows, and its files'
    identities, or a `fingerprint` of its values for data given in memory) and the batch size it started with."""
    state, where = checkpoint.state, str(checkpoint.path)
    then, now = dict(state.run.get("rendered", {})), dict(rendered_spec)
    for spec in (then, now):  # training longer is continuing the same run
        spec["fit"] = {k: v for k, v in spec.get("fit", {}).items() if k != "epochs"}
    if then != now:
        changed = ", ".join(_differences(then, now)[:3])
        raise SpecError([Problem(f"the run was started from another spec (it differs in {changed}); resume "
                                 f"it with the spec it started with, or start a new run", file=where)])
    then_files = state.run.get("files")
    if then_files and files and then_files != files:
        raise SpecError([Problem(f"the run's training data has changed since it started: "
                                 f"{_changed_files(then_files, files)}; resume it with the data it started with, or "
                                 "start a new run", file=where)])
    if state.run.get("rows") != rows:
        raise SpecError([Problem(f"the run trained on {state.run.get('rows')} rows; the data now has {rows}",
                                 file=where)])
    if not (then_files and files) and "data" in state.run and state.run["data"] != fingerprint():
        raise SpecError([Problem(f"the run's training data has changed since it started (the same {rows} rows, "
                                 "other values); resume it with the data it started with, or start a new run",
                                 file=where)])
    if batch_size is not None and batch_size != state.batch_size:
        raise SpecError([Problem(f"the run trains with batch size {state.batch_size}; resuming it with "
                                 f"{batch_size} would not continue the same run", file=where)])


def _changed_files(then: dict[str, str], now: dict[str, str]) -> str:
    said = [f"{name} holds other values" for name in then if name in now and then[name] != now[name]]
    said += [f"{name} is new" for name in now if name not in then]
    said += [f"{name} is gone" for name in then if name not in now]
    return ", ".join(said[:5]) + (f" ({len(said)} files in all)" if len(said) > 5 else "")


def _differences(a, b, path: str = "") -> list[str]:
    """Dotted paths where two plain-data documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in [*a, *(k for k in b if k not in a)]
                for d in _differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path or "the whole spec"]


def check_memory(model, batch_size: int):
    """A training step that cannot fit in this machine's memory is refused before anything is written, with
    the figures, rather than ending in a MemoryError or the system killing the process."""
    from ..graph.memory import memory_problem
    from ..runtime.heap import machine_memory
    problem = memory_problem(model.graph, batch_size, machine_memory())
    if problem is not None:
        where = ("fit", "batch_size") if "batch_size" in model.spec.fit.model_fields_set else ("fit",)
        raise SpecError([model.source.locate(Problem(f"{problem}; lower the batch size or the model's sizes, or "
                                                     "pass --force to train anyway", where))])


def check_unfinished(checkpoint: Checkpoint, epochs: int):
    """A finished run has nothing to resume, unless it is to be trained for more epochs than it was."""
    state = checkpoint.state
    if state.stopped is not None or (state.finished and epochs <= state.epoch):
        how = state.stopped["message"] if state.stopped else f"{state.epoch} of {state.epochs} epoch(s) done"
        raise SpecError([Problem(f"the run is finished ({how}); nothing to resume"
                                 + ("" if state.stopped else "; pass --epochs N to train it further"),
                                 file=str(checkpoint.path))])


def train_in_folder(load: Callable, spec: Optional[str], folder: Optional[Path], resume: Optional[Path],
                    epochs: Optional[int], batch_size: Optional[int], weights: Optional[str], overwrite: bool,
                    make_progress: Callable, say: Callable[[str], None], force: bool = False):
    """`specc train`: a new run in `folder` (default runs/<name>) or the run in `resume` continued; writes
    every file of the run. `load` reads a spec into a model; `make_progress(epochs, steps)` the progress
    output; `force` trains a model whose training step seems not to fit in memory. Returns (model, run
    folder); `model.stopped` says why a run ended early."""
    checkpoint = None
    if resume is not None:
        checkpoint, spec = RunFolder(resume).resumable(spec)
    model = load(spec)
    run = RunFolder(resume or folder or Path("runs") / model.name)
    if checkpoint is not None:
        epochs = epochs or resume_epochs(model.spec, checkpoint.state)
        if checkpoint.state.finished and not run.weights.is_file():
            run.make_writable()
            with run.locked():
                run.complete(model, checkpoint)
            say(f"The run had ended before writing {WEIGHTS}; wrote it from {run.checkpoint}")
            return model, run
        check_unfinished(checkpoint, epochs)
    batch = checkpoint.state.batch_size if checkpoint else batch_size or model.spec.fit.batch_size
    if not force:
        check_memory(model, batch)
    if weights:
        model.load_weights(weights)
    data = model.spec_data()
    run.make_writable()
    with run.locked():
        if checkpoint is None:
            run.check_new(overwrite)
        run.remove_temporaries()
        epochs = epochs or model.spec.fit.epochs
        steps = -(-data[0].rows // batch)
        say((f"Resuming {model.name} from {checkpoint.path} (at {checkpoint.state.describe()})" if checkpoint
             else f"Training {model.name}") + f": {data[0].rows} rows"
            + (f", validating on {data[1].rows}" if data[1] is not None else "")
            + f", {epochs} epoch(s) of {steps} batch(es)")
        progress = make_progress(epochs, steps)

        def stopping(signum):
            progress.message(f"{signal.Signals(signum).name}: stopping after this batch and saving a checkpoint "
                             "(press Ctrl-C again to stop at once)", always=True)
        with run.replacing(overwrite and checkpoint is None), run.environment_errors(), StopOnSignal(stopping) as stop:
            if checkpoint is None or not run.spec.is_file():  # the run's spec, there from its first batch on
                run.write_spec(model.spec)
            model.fit(epochs=epochs, batch_size=batch_size, data=data, progress=progress, out=run.path,
                      resume=checkpoint, stop=stop)
            if (model.stopped or {}).get("reason") != "interrupted":  # a signal now waits for these files
                model.save_weights(run.weights)
    return model, run


class StopOnSignal:
    """SIGINT (Ctrl-C) or SIGTERM during training: the first asks the run to stop after the current batch
    (call the object to ask whether it should); a second stops at once with KeyboardInterrupt.

    Outside the main thread signals cannot be caught, and the object never asks to stop."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_first: Optional[Callable[[int], None]] = None):
        self.on_first = on_first
        self.received: Optional[int] = None
        self._previous: dict = {}

    def __call__(self) -> bool:
        return self.received is not None

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        if self.on_first:
            self.on_first(signum)

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False
