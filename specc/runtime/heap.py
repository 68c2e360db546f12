"""This machine's memory in plain words, and keeping freed memory in the process instead of handing it back
to the operating system every batch.

glibc's malloc serves blocks above a (dynamic) threshold of 128 kB-32 MB with fresh `mmap`s and returns
them on `free`, and trims the top of the heap beyond 128 kB. A training step allocates and frees the same
few-MB-to-hundreds-of-MB arrays (activations, im2col chunks, gradients) every batch, so each batch
page-faults all of them back in: on a virtual machine a 4 kB fault costs ~3.5 us, and in the shared
vision benchmark the faults took more time than the pooling they belonged to (epoch 3.3 s -> 1.9 s for
1024 pairs once freed memory stays). With the thresholds raised, freed blocks stay in malloc's heap and
the next batch reuses them, already mapped. The price: the process keeps its peak memory until it exits,
as PyTorch's caching allocator does.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from decimal import Decimal
from typing import Optional

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def machine_memory() -> Optional[int]:
    """Bytes of physical memory of this machine; None where the system does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or not these names
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def show_bytes(count: int) -> str:
    """A byte count in decimal units to one decimal (23.5 GB, 1.2 TB); beyond them, in powers of ten."""
    if count >= 1000 ** len(_UNITS):  # unbounded shapes make counts a float cannot hold
        return f"{Decimal(count):.1e} B"
    power = 0
    while power + 1 < len(_UNITS) and count >= 1000 ** (power + 1):
        power += 1
    return f"{count} B" if power == 0 else f"{count / 1000 ** power:.1f} {_UNITS[power]}"


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGEST = 2 ** 31 - 1  # mallopt takes a C int

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where malloc is not glibc's."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST) and mallopt(_M_TRIM_THRESHOLD, _LARGEST))
