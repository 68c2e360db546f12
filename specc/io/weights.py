"""Weights files (.npz keyed "layer/weight") and atomic writes: a crash leaves the old file or the new one."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Problem, SpecError
from .npz import NpzError, read_npz


def _mode_for(path: Path) -> int:
    """The permissions the file would get if opened the ordinary way (mkstemp's are owner-only)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomically(path: str | Path, write: Callable[[io.BufferedWriter], None]):
    """Write through a temporary file in the same folder, flushed to disk, then renamed over `path`: a crash
    or kill at any moment leaves the old file or the new one, never a part (at worst a `.NAME.*.tmp` file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _mode_for(path))
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path):
    """Make the rename itself durable (POSIX); where folders cannot be opened, the rename still happened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str):
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]):
    write_atomically(path, lambda f: np.savez(f, **arrays))


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of a weights file; a missing or unreadable file is a SpecError naming it. Never unpickles."""
    try:
        return read_npz(path)
    except NpzError as e:
        raise SpecError([Problem(f"cannot read weights: {m}", (), str(path)) for m in e.messages]) from None
