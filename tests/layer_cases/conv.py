"""Cases of the convolution layers: one for each way they compute and each option that changes the maths.

Conv1D and Conv2D share their algorithms (specc/layers/conv.py): few filters convolve directly, a 1x1 kernel
is a matmul on the pixels, the rest goes through im2col, and 3x3 stride-1 layers with many channels through
Winograd's algorithm, which takes neither dilation nor groups (those fall back to im2col). The defaults pick
the path: filters <= 8 direct, kernel 1 pointwise, >= 16 channels for Winograd."""
from . import case


def conv1d(**entry):
    return {"type": "Conv1D", **entry}


def conv2d(**entry):
    return {"type": "Conv2D", **entry}


CASES = {
    "Conv1D": [
        case(conv1d(filters=3, kernel_size=3), (8, 2)),  # direct
        case(conv1d(filters=4, kernel_size=3, padding="same", activation="relu"), (7, 3)),  # direct, same
        case(conv1d(filters=3, kernel_size=3, padding="causal", dilation_rate=2), (8, 2)),  # direct, causal
        case(conv1d(filters=4, kernel_size=2, groups=2, use_bias=False), (6, 4)),  # direct, grouped
        case(conv1d(filters=10, kernel_size=4, strides=3, activation="tanh"), (11, 3)),  # im2col, strided
        case(conv1d(filters=10, kernel_size=3, strides=2, padding="causal"), (9, 2)),  # im2col, causal
        case(conv1d(filters=10, kernel_size=2, strides=2, padding="same"), (9, 2)),  # im2col, uneven padding
        case(conv1d(filters=12, kernel_size=3, padding="same", dilation_rate=2, groups=2), (9, 4)),  # im2col
        case(conv1d(filters=9, kernel_size=1, strides=2, groups=3), (7, 3)),  # pointwise, strided, grouped
    ],
    "Conv2D": [
        case(conv2d(filters=3, kernel_size=3, padding="same"), (5, 5, 2)),  # direct
        case(conv2d(filters=4, kernel_size=[2, 3], strides=2, activation="relu"), (6, 7, 2)),  # direct, strided
        case(conv2d(filters=3, kernel_size=3, padding="same", dilation_rate=[2, 1]), (6, 5, 2)),  # direct
        case(conv2d(filters=4, kernel_size=2, strides=2, groups=2, activation="relu"), (5, 6, 4)),  # direct
        case(conv2d(filters=10, kernel_size=[3, 2], strides=[1, 2], padding="same", activation="sigmoid"),
             (5, 6, 3)),  # im2col, uneven padding
        case(conv2d(filters=10, kernel_size=[2, 3], dilation_rate=2, activation="sigmoid"), (6, 7, 3)),  # im2col
        case(conv2d(filters=10, kernel_size=3, strides=[2, 1], padding="same", groups=2), (5, 6, 4)),  # im2col
        case(conv2d(filters=9, kernel_size=3, padding="same", activation="tanh"), (4, 5, 16)),  # Winograd
        case(conv2d(filters=9, kernel_size=3, padding="same", dilation_rate=2), (5, 5, 16)),  # not Winograd
        case(conv2d(filters=10, kernel_size=3, padding="same", groups=2), (4, 5, 16)),  # not Winograd
        case(conv2d(filters=5, kernel_size=1, strides=2, use_bias=False), (5, 5, 3)),  # pointwise
        case(conv2d(filters=12, kernel_size=1, groups=4, use_bias=False), (4, 4, 8)),  # pointwise, grouped
    ],
}
