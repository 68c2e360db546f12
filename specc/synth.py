"""Random data of the right names, shapes and dtypes for a model, so any spec can be smoke-trained."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .graph import Graph
from .train.losses import LOSSES

DEFAULT_ID_RANGE = 10


def synthesize(graph: Graph, losses: dict[str, str], rows: int, seed: int = 0,
               input_names: Optional[dict[str, str]] = None,
               target_names: Optional[dict[str, str]] = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in graph.inputs.items():
        dtype = graph.input_dtypes[name]
        if dtype.startswith("int"):
            limit = min(graph.id_limits(name), default=DEFAULT_ID_RANGE)
            array = rng.integers(0, limit, size=(rows, *shape)).astype(dtype)
        else:
            array = rng.normal(size=(rows, *shape)).astype(np.float32)
        arrays[(input_names or {}).get(name, name)] = array
    for name in graph.outputs:
        shape, kind = graph.shapes[name], LOSSES[losses[name]].targets
        target: np.ndarray  # integer labels, or float32 values
        if kind == "labels":
            target = rng.integers(0, shape[-1], size=(rows, *shape[:-1]))
        elif kind == "one_hot":
            target = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], size=(rows, *shape[:-1]))]
        elif kind == "binary":
            target = rng.integers(0, 2, size=(rows, *shape)).astype(np.float32)
        else:
            target = rng.normal(size=(rows, *shape)).astype(np.float32)
        arrays[(target_names or {}).get(name, name)] = target
    return arrays
