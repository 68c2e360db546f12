"""Weights files (.npz keyed "layer/weight") and atomic writes: a crash leaves the old file or the new one."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from numpy.lib import format as npy
from numpy.typing import DTypeLike

from ..errors import Problem, SpecError
from .npz import ArrayHeader, NpzArchive, NpzError


def _mode_for(path: Path) -> int:
    """The permissions the file would get if opened the ordinary way (mkstemp's are owner-only)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def terminate_raises():
    """SIGTERM, where nothing else handles it, ends the process on the spot, leaving a write's temporary files
    behind; within, it raises SystemExit instead (the usual status, 128 + 15), which removes them on its way
    out."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def write_atomically(path: str | Path, write: Callable[[io.BufferedWriter], object]):  # its result is unused
    """Write through a temporary file in the same folder, flushed to disk, then renamed over `path`: a crash
    or kill at any moment leaves the old file or the new one, never a part. An exception during the write
    (Ctrl-C included) removes the temporary; only a kill that cannot be caught leaves a `.NAME.*.tmp` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = None
    try:
        with terminate_raises():
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), _mode_for(path))
                os.fsync(f.fileno())
            os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
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


# The rows of one array of an .npz, in order: (name, shape, dtype, chunks), each chunk a block of rows of shape[1:].
Member = tuple[str, Sequence[int], DTypeLike, Iterable[np.ndarray]]


def write_members(path: str | Path, members: Iterable[Member]):
    """An .npz as np.savez writes it (stored, zip64, C order), written array after array and each array chunk
    after chunk, so that neither is ever held whole. A member is one array of known shape and dtype whose rows
    arrive as consecutive chunks of shape[1:] (a 0-d array: one chunk of shape ()), cast to `dtype`. Any name
    goes (np.savez takes `file` and `allow_pickle` for its own arguments); never a pickle. Atomic, as
    `write_atomically`. A chunk that does not fit its array raises ValueError naming the array."""
    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, shape, dtype, chunks in members:
                with archive.open(name + ".npy", "w", force_zip64=True) as member:
                    _write_npy(member, name, tuple(int(n) for n in shape), np.dtype(dtype), chunks)
    write_atomically(path, write)


def _write_npy(file, name: str, shape: tuple[int, ...], dtype: np.dtype, chunks: Iterable[np.ndarray]):
    """One .npy: its header, then its chunks' bytes in C order."""
    if dtype.hasobject:
        raise ValueError(f"array '{name}' has dtype {dtype}: Python objects are never written")
    header = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    try:
        npy.write_array_header_1_0(file, header)
    except ValueError:  # beyond version 1.0's 64 KiB of header (a dtype of very many fields), as np.save does
        npy.write_array_header_2_0(file, header)
    rows, written = (shape[0] if shape else 1), 0
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=dtype, order="C")  # no copy when it already is
        if chunk.ndim != len(shape) or chunk.shape[1:] != shape[1:]:
            raise ValueError(f"array '{name}' of shape {shape} got a chunk of shape {chunk.shape}")
        written += len(chunk) if chunk.ndim else 1
        if written > rows:
            raise ValueError(f"array '{name}' of shape {shape} got more than {rows} rows")
        file.write(chunk.reshape(-1).view(np.uint8))
    if written < rows:
        raise ValueError(f"array '{name}' of shape {shape} got {written} rows")


def save_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]):
    """An .npz as np.savez writes it, for arrays of any names; never a pickle."""
    arrays = {name: np.asarray(array) for name, array in arrays.items()}
    write_members(path, ((name, array.shape, array.dtype, [array]) for name, array in arrays.items()))


def not_numbers(arrays: Mapping[str, np.ndarray | ArrayHeader], names: Iterable[str]) -> list[str]:
    """Why each of the named arrays (or array headers) is not numbers to compute with, one sentence each."""
    return [f"array '{name}' has dtype {arrays[name].dtype}; numbers are needed"
            for name in names if arrays[name].dtype.kind not in "biuf"]


def not_finite(arrays: Mapping[str, np.ndarray], names: Iterable[str]) -> list[str]:
    """Which of the named arrays hold NaN or infinite values, and where the first is, one sentence each."""
    problems = []
    for name in names:
        array = arrays[name]
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            where = f" (first at index {tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])})" \
                if array.ndim else ""
            problems.append(f"array '{name}' has NaN or infinite values{where}")
    return problems


# A checkpoint (train.checkpoint) holds the weights under this prefix beside its training state, so that it
# works wherever a weights file does.
WEIGHTS, STATE = "weights/", "state"


def is_checkpoint(arrays: Mapping) -> bool:
    return STATE in arrays and any(k.startswith(WEIGHTS) for k in arrays)


def weights_of(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weights in a weights file or a checkpoint."""
    if not is_checkpoint(arrays):
        return arrays
    return {k[len(WEIGHTS):]: v for k, v in arrays.items() if k.startswith(WEIGHTS)}


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of a weights file (or of a checkpoint), its weights checked to be finite numbers, their dtypes
    before any is unpacked; a missing, unreadable or unusable file is a SpecError naming it. Never unpickles."""
    try:
        with NpzArchive(path) as archive:
            headers = archive.headers
            weights = [name for name in headers if name.startswith(WEIGHTS)] if is_checkpoint(headers) \
                else list(headers)
            problems = not_numbers(headers, weights)
            arrays = {} if problems else archive.read()
    except NpzError as e:
        raise SpecError([Problem(f"cannot read weights: {m}", (), str(path)) for m in e.messages]) from None
    problems = problems or not_finite(arrays, weights)
    if problems:
        raise SpecError([Problem(m, (), str(path)) for m in problems])
    return arrays
