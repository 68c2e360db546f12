"""Weights files (.npz keyed "layer/weight") and atomic writes: a crash leaves the old file or the new one."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import Problem, SpecError


def write_atomically(path: str | Path, write: Callable[[io.BufferedWriter], None]):
    """Write through a temporary file in the same folder, flushed to disk, then renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str):
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]):
    write_atomically(path, lambda f: np.savez(f, **arrays))


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of a weights file; a missing or unreadable file is a SpecError naming it. Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise SpecError([Problem("no such weights file", (), str(path))]) from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix, not a crash
        raise SpecError([Problem(f"not a readable weights file ({type(e).__name__}: {e})", (), str(path))]) from None
