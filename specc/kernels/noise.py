"""The masks of the dropout layers."""
from numba import njit


@njit(cache=True, nogil=True)
def dropout_mask(bits, threshold, scale, mask):
    """mask <- scale where bits >= threshold, else 0, over 1-D arrays. bits are uniform 32-bit integers, so
    a cell is kept with probability 1 - threshold / 2^32 (threshold = rate * 2^32), and a kept one scaled by
    `scale` (1 / (1 - rate) for inverted dropout)."""
    zero = mask.dtype.type(0.0)
    for i in range(mask.shape[0]):
        mask[i] = scale if bits[i] >= threshold else zero
