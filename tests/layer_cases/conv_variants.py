"""Cases of the transposed, depthwise and separable convolutions: one per option that changes the maths."""
from . import case


def transposed(**entry):
    return {"type": "Conv2DTranspose", **entry}


def transposed_1d(**entry):
    return {"type": "Conv1DTranspose", **entry}


def depthwise(**entry):
    return {"type": "DepthwiseConv2D", **entry}


def depthwise_1d(**entry):
    return {"type": "DepthwiseConv1D", **entry}


def separable(**entry):
    return {"type": "SeparableConv2D", **entry}


def separable_1d(**entry):
    return {"type": "SeparableConv1D", **entry}


CASES = {
    "Conv2DTranspose": [
        case(transposed(filters=3, kernel_size=3, strides=2, padding="same", activation="relu"), (4, 4, 2)),
        case(transposed(filters=2, kernel_size=[2, 3], strides=[2, 1]), (3, 4, 2)),
        # strides beyond the kernel: the default output padding leaves cells no window reaches (bias only)
        case(transposed(filters=2, kernel_size=2, strides=3, activation="sigmoid"), (2, 3, 1)),
        case(transposed(filters=2, kernel_size=3, strides=2, padding="same", output_padding=1), (3, 3, 2)),
        case(transposed(filters=2, kernel_size=3, strides=[3, 2], output_padding=[2, 1]), (2, 3, 2)),
        # an even kernel with padding same: Keras' crop before is not half the padding
        case(transposed(filters=3, kernel_size=4, strides=2, padding="same", use_bias=False), (3, 3, 3)),
        case(transposed(filters=2, kernel_size=2, strides=2, padding="same", output_padding=0), (3, 2, 1)),
        case(transposed(filters=2, kernel_size=3, dilation_rate=2, padding="same", activation="tanh"), (4, 5, 2)),
        case(transposed(filters=3, kernel_size=[3, 2], dilation_rate=[1, 2]), (3, 3, 2)),
        case(transposed(filters=4, kernel_size=1), (3, 3, 2)),
    ],
    "Conv1DTranspose": [
        case(transposed_1d(filters=2, kernel_size=3, strides=2, padding="same", activation="relu"), (5, 3)),
        case(transposed_1d(filters=3, kernel_size=4, strides=3, output_padding=2), (4, 2)),
        case(transposed_1d(filters=2, kernel_size=3, dilation_rate=2, use_bias=False), (5, 2)),
    ],
    "DepthwiseConv2D": [
        case(depthwise(kernel_size=3, padding="same"), (5, 5, 3)),
        case(depthwise(kernel_size=[2, 3], strides=2, depth_multiplier=2, activation="relu"), (6, 7, 2)),
        case(depthwise(kernel_size=3, dilation_rate=2, padding="same", activation="tanh"), (6, 6, 2)),
        case(depthwise(kernel_size=2, strides=[1, 2], padding="same", depth_multiplier=3, use_bias=False), (4, 5, 2)),
        case(depthwise(kernel_size=3, strides=2, dilation_rate=2), (7, 8, 2)),
    ],
    "DepthwiseConv1D": [
        case(depthwise_1d(kernel_size=3, padding="same"), (6, 3)),
        case(depthwise_1d(kernel_size=2, strides=2, depth_multiplier=2, activation="relu"), (7, 2)),
        case(depthwise_1d(kernel_size=3, dilation_rate=2, use_bias=False), (7, 2)),
    ],
    "SeparableConv2D": [
        case(separable(filters=4, kernel_size=3, padding="same"), (5, 5, 3)),
        case(separable(filters=3, kernel_size=[2, 3], strides=2, depth_multiplier=2, activation="relu"), (6, 7, 2)),
        case(separable(filters=2, kernel_size=3, dilation_rate=2, padding="same", activation="tanh",
                       use_bias=False), (6, 6, 2)),
    ],
    "SeparableConv1D": [
        case(separable_1d(filters=3, kernel_size=3, padding="same"), (6, 2)),
        case(separable_1d(filters=2, kernel_size=2, strides=2, depth_multiplier=2, use_bias=False), (7, 3)),
    ],
}
