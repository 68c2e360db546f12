"""Summaries of data arrays, read once in chunks so that checking a dataset of any size costs one pass."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def value_summary(values):
    """(lo, hi, nonfinite, integral) of a flat array: lo = min x and hi = max x over its finite values (inf and
    -inf when it has none), nonfinite = any x is NaN or ±inf, integral = every finite x equals floor(x).

    x - x is 0 for every finite x and NaN for NaN and ±inf: one test for both."""
    lo, hi = np.inf, -np.inf
    nonfinite, integral = False, True
    for value in values:
        x = np.float64(value)
        if x - x != 0.0:
            nonfinite = True
            continue
        if x < lo:
            lo = x
        if x > hi:
            hi = x
        if integral and x != np.floor(x):
            integral = False
    return lo, hi, nonfinite, integral


@njit(cache=True, nogil=True)
def gather_rows(source, rows, out):
    """out[i, :] = source[rows[i], :], each value cast to out's dtype as numpy's astype casts it: the rows of
    a batch, read (from a memory-mapped file) and cast in one pass, without holding Python's lock."""
    for i in range(rows.shape[0]):
        row = rows[i]
        for j in range(source.shape[1]):
            out[i, j] = source[row, j]
