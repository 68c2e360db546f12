"""Whether a training step fits in memory: said before training starts, rather than by a MemoryError at the
first batch, or by the system stopping the process."""
from __future__ import annotations

from typing import Optional

from ..runtime.heap import show_bytes
from .graph import Graph


def memory_problem(graph: Graph, batch_size: int, available_bytes: Optional[int]) -> Optional[str]:
    """Why a training step at `batch_size` will not fit in `available_bytes` (Graph.training_step_bytes says
    how the need is estimated); None when it may fit, or when the memory available is unknown."""
    needed = graph.training_step_bytes(batch_size)
    if available_bytes is None or needed <= available_bytes:
        return None
    return (f"a training step at batch size {batch_size} needs about {show_bytes(needed)} of memory; "
            f"this machine has {show_bytes(available_bytes)}")
