"""The integer code of each activation the fused kernels compute: one compiled kernel serves all of them.

Plain Python (no numba), so the spec format can list the activations without loading any kernel."""
LINEAR, RELU, SIGMOID, TANH, SOFTMAX = 0, 1, 2, 3, 4
CODES = {"linear": LINEAR, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "softmax": SOFTMAX}
