"""Whether a training step fits in memory: said before training starts, rather than by a MemoryError at the
first batch, or by the system stopping the process."""
from __future__ import annotations

import os
from decimal import Decimal
from typing import Optional

from .graph import Graph

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def machine_memory() -> Optional[int]:
    """Bytes of physical memory of this machine; None where the system does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or not these names
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def memory_problem(graph: Graph, batch_size: int, available_bytes: Optional[int]) -> Optional[str]:
    """Why a training step at `batch_size` will not fit in `available_bytes` (Graph.training_step_bytes says
    how the need is estimated); None when it may fit, or when the memory available is unknown."""
    needed = graph.training_step_bytes(batch_size)
    if available_bytes is None or needed <= available_bytes:
        return None
    return (f"a training step at batch size {batch_size} needs about {show_bytes(needed)} of memory; "
            f"this machine has {show_bytes(available_bytes)}")


def show_bytes(count: int) -> str:
    """A byte count in decimal units to one decimal (23.5 GB, 1.2 TB); beyond them, in powers of ten."""
    if count >= 1000 ** len(_UNITS):  # unbounded shapes make counts a float cannot hold
        return f"{Decimal(count):.1e} B"
    power = 0
    while power + 1 < len(_UNITS) and count >= 1000 ** (power + 1):
        power += 1
    return f"{count} B" if power == 0 else f"{count / 1000 ** power:.1f} {_UNITS[power]}"
