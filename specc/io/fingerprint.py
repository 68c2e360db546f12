"""A dataset's fingerprint: names, dtypes, shapes and a hash of evenly spaced rows, so that a resumed run can
tell its data was changed without reading all of it again. It costs a few milliseconds at any size: each
array contributes at most SAMPLED_BYTES."""
from __future__ import annotations

import hashlib

import numpy as np

SAMPLED_BYTES = 2 ** 20


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """sha256 (hex) over each array's name, dtype and shape and as many evenly spaced rows as fit in
    SAMPLED_BYTES (the first and the last among them): any change of a sampled row or of the layout shows."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = arrays[name]
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        if len(array):
            row_bytes = max(array[0].nbytes, 1)
            sampled = min(len(array), max(2, SAMPLED_BYTES // row_bytes))
            rows = np.unique(np.linspace(0, len(array) - 1, sampled).astype(np.int64))
            digest.update(np.ascontiguousarray(array[rows]).tobytes())
    return digest.hexdigest()
