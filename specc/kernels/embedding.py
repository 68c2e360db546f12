"""Embedding lookup's backward: scatter-add of output gradients into the rows of the table."""
from numba import njit


@njit(cache=True)
def scatter_add_rows(ids, dy, out):
    """out[ids[n]] += dy[n] for every n (ids repeat freely); ids (N,), dy (N, D), out (V, D)."""
    D = dy.shape[1]
    for n in range(ids.shape[0]):
        r = ids[n]
        for d in range(D):
            out[r, d] += dy[n, d]
