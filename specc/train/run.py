"""A run folder (weights.npz, checkpoint.npz, history.csv, spec.yaml) and stopping a run cleanly on a signal."""
from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from typing import Callable, Optional

from ..errors import Problem, SpecError
from .checkpoint import Checkpoint, load_checkpoint

CHECKPOINT, WEIGHTS, HISTORY, SPEC = "checkpoint.npz", "weights.npz", "history.csv", "spec.yaml"
RUN_FILES = (CHECKPOINT, WEIGHTS, HISTORY)
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what weights.write_atomically leaves if killed


def check_new_run(folder: Path, overwrite: bool):
    """A folder that holds a run is not trained into again without `overwrite`; with it, the old run's
    files are removed first, so a stale checkpoint can never be resumed as if it were the new run's."""
    present = [name for name in RUN_FILES if (folder / name).is_file()]
    if not present:
        return
    if overwrite:
        for name in (*RUN_FILES, SPEC):
            (folder / name).unlink(missing_ok=True)
        return
    unfinished = None
    if (folder / CHECKPOINT).is_file():
        try:
            state = load_checkpoint(folder / CHECKPOINT).state
            if not state.finished and state.stopped is None:
                unfinished = state
        except SpecError:
            pass
    if unfinished is not None and not (folder / WEIGHTS).is_file():
        message = (f"holds an unfinished run (stopped at {unfinished.describe()}); continue it with "
                   f"`specc train --resume {folder}`, or pass --overwrite to start over")
    else:
        message = (f"already holds a run ({', '.join(present)}); pass --overwrite to replace it, "
                   f"or choose another folder with --out")
    raise SpecError([Problem(message, (), str(folder))])


def resumable(folder: Path, spec: Optional[str]) -> tuple[Checkpoint, str]:
    """The run's checkpoint, and the spec to resume it with (by default the one it was started from)."""
    checkpoint = load_checkpoint(folder / CHECKPOINT)
    if spec is None:
        spec = checkpoint.state.run.get("spec", "")
        if not Path(spec).is_file():
            raise SpecError([Problem(f"the run's spec {spec} is gone; give it: specc train SPEC --resume {folder}",
                                     file=str(checkpoint.path))])
    return checkpoint, spec


def check_unfinished(checkpoint: Checkpoint, epochs: int):
    """A finished run has nothing to resume, unless it is to be trained for more epochs than it was."""
    state = checkpoint.state
    if state.stopped is not None or (state.finished and epochs <= state.epoch):
        how = state.stopped["message"] if state.stopped else f"{state.epoch} of {state.epochs} epoch(s) done"
        raise SpecError([Problem(f"the run is finished ({how}); nothing to resume"
                                 + ("" if state.stopped else "; pass --epochs N to train it further"),
                                 file=str(checkpoint.path))])


def remove_temporaries(folder: Path) -> list[Path]:
    """Temporary files an interrupted atomic write left behind (never a result: results are renamed)."""
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if TEMPORARY.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


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
