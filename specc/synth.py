"""Random data of the right names, shapes and dtypes for a model, so any spec can be smoke-trained; made in chunks
of rows, so that a file of any size is written in bounded memory."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np

from .graph import Graph
from .io.weights import Member
from .train.losses import LOSSES

DEFAULT_ID_RANGE = 10
CHUNK_BYTES = 64 * 2 ** 20  # made at a time, per array


@dataclass(frozen=True)
class Synthetic:
    """One array to make up: `draw(rng, n)` gives its next n rows."""
    name: str
    row_shape: tuple[int, ...]
    dtype: np.dtype
    draw: Callable[[np.random.Generator, int], np.ndarray]

    def chunks(self, rng: np.random.Generator, rows: int, chunk_bytes: int) -> Iterator[np.ndarray]:
        chunk_rows = max(1, chunk_bytes // max(1, math.prod(self.row_shape) * self.dtype.itemsize))
        for start in range(0, rows, chunk_rows):
            yield self.draw(rng, min(chunk_rows, rows - start))


def _ids(name: str, row_shape: tuple[int, ...], limit: int, dtype: np.dtype) -> Synthetic:
    return Synthetic(name, row_shape, dtype, lambda rng, n: rng.integers(0, limit, size=(n, *row_shape), dtype=dtype))


def _normal(name: str, row_shape: tuple[int, ...]) -> Synthetic:
    return Synthetic(name, row_shape, np.dtype(np.float32),
                     lambda rng, n: rng.standard_normal(size=(n, *row_shape), dtype=np.float32))


def _one_hot(name: str, row_shape: tuple[int, ...]) -> Synthetic:
    classes = np.eye(row_shape[-1], dtype=np.float32)
    return Synthetic(name, row_shape, classes.dtype,
                     lambda rng, n: classes[rng.integers(0, row_shape[-1], size=(n, *row_shape[:-1]))])


def _binary(name: str, row_shape: tuple[int, ...]) -> Synthetic:
    return Synthetic(name, row_shape, np.dtype(np.float32),
                     lambda rng, n: rng.integers(0, 2, size=(n, *row_shape)).astype(np.float32))


def _synthetics(graph: Graph, losses: dict[str, str], input_names: Optional[dict[str, str]],
                target_names: Optional[dict[str, str]]) -> list[Synthetic]:
    """The model's inputs (ids within their Embedding's range), then its targets (as its losses take them), named
    as the data file names them."""
    arrays = []
    for name, shape in graph.inputs.items():
        named, dtype = (input_names or {}).get(name, name), np.dtype(graph.input_dtypes[name])
        if dtype.kind == "i":
            arrays.append(_ids(named, shape, min(graph.id_limits(name), default=DEFAULT_ID_RANGE), dtype))
        else:
            arrays.append(_normal(named, shape))
    for name in graph.outputs:
        named, shape, kind = (target_names or {}).get(name, name), graph.shapes[name], LOSSES[losses[name]].targets
        if kind == "labels":
            arrays.append(_ids(named, shape[:-1], shape[-1], np.dtype(np.int64)))
        elif kind == "one_hot":
            arrays.append(_one_hot(named, shape))
        elif kind == "binary":
            arrays.append(_binary(named, shape))
        else:
            arrays.append(_normal(named, shape))
    return arrays


def synthetic_members(graph: Graph, losses: dict[str, str], rows: int, seed: int = 0,
                      input_names: Optional[dict[str, str]] = None, target_names: Optional[dict[str, str]] = None,
                      chunk_bytes: int = CHUNK_BYTES) -> list[Member]:
    """The arrays of `synthesize` as `write_members` takes them, each made `chunk_bytes` at a time when its chunks
    are read. Every array draws from its own generator (spawned from `seed`, in order), so its values are the same
    whatever the chunks."""
    made: dict[str, Synthetic] = {}
    for array in _synthetics(graph, losses, input_names, target_names):
        made.setdefault(array.name, array)  # an array that is an input and a target too is made once
    arrays = list(made.values())
    generators = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(arrays))]
    return [(array.name, (rows, *array.row_shape), array.dtype, array.chunks(rng, rows, chunk_bytes))
            for array, rng in zip(arrays, generators)]


def synthesize(graph: Graph, losses: dict[str, str], rows: int, seed: int = 0,
               input_names: Optional[dict[str, str]] = None,
               target_names: Optional[dict[str, str]] = None) -> dict[str, np.ndarray]:
    """Random arrays by name: inputs, then targets (see `synthetic_members`)."""
    return {name: np.concatenate(list(chunks))
            for name, _, _, chunks in synthetic_members(graph, losses, rows, seed, input_names, target_names)}
