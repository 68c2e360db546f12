"""An array's rows read on demand: spread over the shards of a dataset, memory-mapped, cast only when taken."""
from __future__ import annotations

import ctypes
import functools
import math
import mmap
from typing import Iterator, Optional, Union

import numpy as np


class Rows:
    """The rows of one array over its parts (memory-mapped shards, or arrays in memory), one after another.
    Indexing by a slice or by row numbers reads only those rows, cast to `dtype` and shaped (n, *row_shape),
    exactly as casting the whole array and then indexing it would."""

    def __init__(self, parts: list[np.ndarray], dtype, row_shape: tuple):
        self.parts, self.dtype, self.row_shape = parts, np.dtype(dtype), tuple(row_shape)
        self.starts = np.cumsum([0, *map(len, parts)])
        # each part as (rows, values) for the gathering kernel; None where that would copy (Fortran order)
        self._flat = [part.view(np.ndarray).reshape(len(part), -1) if part.flags.c_contiguous and len(part) else None
                      for part in parts]

    @property
    def shape(self) -> tuple:
        return (int(self.starts[-1]), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def mapped(self) -> bool:
        return any(isinstance(part, np.memmap) for part in self.parts)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("rows are taken by a slice of step 1 or by row numbers")
            return self._range(start, max(start, stop))
        index = np.asarray(index, dtype=np.int64)
        if index.ndim == 0:  # one row
            return self[index.reshape(1) % max(len(self), 1)][0]
        if len(index) > 1 and (index[1:] < index[:-1]).any():  # read in file order, then put back
            order = np.argsort(index, kind="stable")
            out = np.empty((len(index), *self.row_shape), self.dtype)
            out[order] = self[index[order]]
            return out
        if len(index) and (index[0] < 0 or index[-1] >= len(self)):
            raise IndexError(f"row numbers outside [0, {len(self)})")
        out = np.empty((len(index), *self.row_shape), self.dtype)
        bounds = np.searchsorted(index, self.starts)
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            if lo < hi:
                self._gather(k, index[lo:hi], out[lo:hi])
        return out

    def _gather(self, k: int, index: np.ndarray, out: np.ndarray):
        """Rows `index` (numbered across the parts) of part k into `out`, cast."""
        flat, rows = self._flat[k], index - self.starts[k] if k else index
        if flat is None:
            out[...] = self.parts[k][rows].reshape(out.shape)
        elif flat.dtype == self.dtype:  # numpy copies whole rows, without Python's lock
            np.take(flat, rows, axis=0, out=out.reshape(len(out), -1))
        else:
            _kernels().gather_rows(flat, rows, out.reshape(len(out), -1))

    def _range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.row_shape), self.dtype)
        for part, first in zip(self.parts, self.starts):
            lo, hi = max(start, first), min(stop, first + len(part))
            if lo < hi:
                out[lo - start:hi - start] = part[lo - first:hi - first].reshape(hi - lo, *self.row_shape)
        return out

    def whole(self) -> np.ndarray:
        """Every row in memory: a part already of this dtype as it is, else one cast copy."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], np.memmap):
            return self.parts[0].astype(self.dtype, copy=False).reshape(self.shape)
        return self[:]

    def advise(self, shuffled: bool):
        """Tells the system how the mapped rows will be read: shuffled (no read-ahead, which would read
        megabytes around each row from disk) or in order (read-ahead as usual)."""
        advice = getattr(mmap, "MADV_RANDOM" if shuffled else "MADV_NORMAL", None)
        if advice is not None:
            for part in self.parts:
                _advise(part, advice)

    def resident(self) -> float:
        """The share of the mapped parts' pages now in memory (the page cache), 1.0 where that cannot be told."""
        shares = [(_resident(part), part.nbytes) for part in self.parts if _mapping(part) is not None]
        total = sum(size for _, size in shares)
        return sum(share * size for share, size in shares) / total if total else 1.0

    def expect(self, index: np.ndarray):
        """Asks the system to start reading the pages of these rows (sorted row numbers) from disk now, all at
        once, rather than one page fault at a time when they are taken."""
        advice = getattr(mmap, "MADV_WILLNEED", None)
        if advice is None:
            return
        bounds = np.searchsorted(index, self.starts)
        for part, first, lo, hi in zip(self.parts, self.starts, bounds, bounds[1:]):
            mapping = _mapping(part)
            if lo < hi and mapping is not None:
                row_bytes = part[0].nbytes
                starts = _offset_in(mapping, part) + (index[lo:hi] - first) * row_bytes
                pages = starts - starts % mmap.PAGESIZE
                ends = starts + row_bytes
                runs = np.flatnonzero(pages[1:] > ends[:-1]) + 1  # rows whose pages do not join the last's
                for a, b in zip(np.r_[0, runs], np.r_[runs, len(pages)]):
                    mapping.madvise(advice, int(pages[a]), int(ends[b - 1] - pages[a]))

    def between(self, start: int, stop: int) -> "Rows":
        """Rows start to stop, still read on demand."""
        parts = []
        for part, first in zip(self.parts, self.starts):
            lo, hi = max(start, first), min(stop, first + len(part))
            if lo < hi:
                parts.append(part[lo - first:hi - first])
        return Rows(parts, self.dtype, self.row_shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.whole()
        return whole if dtype is None else whole.astype(dtype, copy=False)


def _advise(part: np.ndarray, advice: int):
    """madvise over the pages of `part`, a memory-mapped array (or a view of one)."""
    mapping = _mapping(part)
    if mapping is None or not part.nbytes:
        return
    start = _offset_in(mapping, part)
    first = start - start % mmap.PAGESIZE
    mapping.madvise(advice, first, min(len(mapping), start + part.nbytes) - first)


def _resident(part: np.ndarray) -> float:
    """The share of a mapped array's pages in memory, asked of the system in one call (mincore)."""
    mincore = _mincore()
    mapping = _mapping(part)
    if mincore is None or mapping is None or not part.nbytes:
        return 1.0
    start = part.ctypes.data - _offset_in(mapping, part) % mmap.PAGESIZE
    length = _offset_in(mapping, part) % mmap.PAGESIZE + part.nbytes
    pages = np.zeros(-(-length // mmap.PAGESIZE), np.uint8)
    if mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), pages.ctypes.data_as(ctypes.c_void_p)) != 0:
        return 1.0
    return float((pages & 1).mean())


@functools.cache
def _mincore():
    """libc's mincore, where there is one (Linux and macOS); None elsewhere."""
    try:
        function = ctypes.CDLL(None, use_errno=True).mincore
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


@functools.cache
def _kernels():
    """The data kernels, loaded on first use (numba: commands that only read headers never load it)."""
    from ..kernels import data
    return data


def _mapping(part: np.ndarray) -> Optional[mmap.mmap]:
    """The mapping of a memory-mapped array (or of a view of one); None for an array in memory."""
    return getattr(part, "_mmap", None)


def _offset_in(mapping: mmap.mmap, part: np.ndarray) -> int:
    """Where a memory-mapped array's first value lies in its mapping (np.memmap maps from a page boundary)."""
    return part.ctypes.data - np.frombuffer(mapping, np.uint8, count=1).ctypes.data


def row_chunks(array: Union[np.ndarray, Rows], chunk_bytes: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of an array, about `chunk_bytes` at a time (at least one row), each in memory."""
    step = max(1, chunk_bytes // max(1, math.prod(array.shape[1:]) * array.dtype.itemsize))
    for start in range(0, len(array), step):
        yield start, np.asarray(array[start:start + step])
