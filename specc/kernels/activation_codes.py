"""The integer code of each activation the fused kernels compute: one compiled kernel serves all of them.

Plain Python (no numba), so the spec format can list the activations without loading any kernel.

Every name is Keras 3's (`keras.activations`, with its default arguments). Most activations' derivatives
follow from their output y alone, so the kernels compute them in place and backward reads y. Those in
NEEDS_INPUT (gelu, silu, mish, hard_silu, tanh_shrink) are not functions of their output: backward reads
their pre-activation instead, which the layer keeps.
"""
LINEAR, RELU, SIGMOID, TANH, SOFTMAX = 0, 1, 2, 3, 4
(ELU, SELU, SOFTPLUS, SOFTSIGN, HARD_SIGMOID, RELU6, LEAKY_RELU, EXPONENTIAL, LOG_SOFTMAX, CELU, HARD_TANH,
 SOFT_SHRINK, HARD_SHRINK, SPARSE_PLUS, SPARSE_SIGMOID, LOG_SIGMOID, SQUAREPLUS) = range(5, 22)
GELU, SILU, MISH, HARD_SILU, TANH_SHRINK = range(22, 27)

CODES = {"linear": LINEAR, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "softmax": SOFTMAX,
         "elu": ELU, "selu": SELU, "softplus": SOFTPLUS, "softsign": SOFTSIGN, "hard_sigmoid": HARD_SIGMOID,
         "relu6": RELU6, "leaky_relu": LEAKY_RELU, "exponential": EXPONENTIAL, "log_softmax": LOG_SOFTMAX,
         "celu": CELU, "hard_tanh": HARD_TANH, "soft_shrink": SOFT_SHRINK, "hard_shrink": HARD_SHRINK,
         "sparse_plus": SPARSE_PLUS, "sparse_sigmoid": SPARSE_SIGMOID, "log_sigmoid": LOG_SIGMOID,
         "squareplus": SQUAREPLUS,
         "gelu": GELU, "silu": SILU, "mish": MISH, "hard_silu": HARD_SILU, "tanh_shrink": TANH_SHRINK}
ALIASES = {"silu": ("swish",), "hard_silu": ("hard_swish",)}

NEEDS_INPUT = (GELU, SILU, MISH, HARD_SILU, TANH_SHRINK)  # derivative not a function of the output
ROW_WISE = (SOFTMAX, LOG_SOFTMAX)  # over the last axis; the others are element-wise
