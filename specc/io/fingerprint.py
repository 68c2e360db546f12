"""A dataset's fingerprint: names, dtypes, shapes and a hash of evenly spaced rows, so that a resumed run can
tell its data was changed without reading all of it again."""
from __future__ import annotations

import hashlib

import numpy as np

SAMPLED_ROWS = 1024


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """sha256 (hex) over each array's name, dtype and shape and up to SAMPLED_ROWS rows, the first and the last
    among them: cheap at any size, and any change of a sampled row or of the layout shows."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = arrays[name]
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        if len(array):
            rows = np.unique(np.linspace(0, len(array) - 1, min(len(array), SAMPLED_ROWS)).astype(np.int64))
            digest.update(np.ascontiguousarray(array[rows]).tobytes())
    return digest.hexdigest()
