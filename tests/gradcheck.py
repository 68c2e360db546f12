"""Finite-difference checks (float64) of hand-written backward passes."""
from __future__ import annotations

import numpy as np

from specc.layers import Training


def numeric_gradient(f, x: np.ndarray, eps: float = 1e-6, max_checks: int = 200, rng=None) -> tuple:
    """Central differences of scalar f() with respect to (a sample of) the entries of x, changed in place."""
    rng = rng or np.random.default_rng(0)
    flat = x.reshape(-1)
    picks = np.arange(flat.size) if flat.size <= max_checks else rng.choice(flat.size, max_checks, replace=False)
    grads = np.empty(len(picks))
    for j, i in enumerate(picks):
        keep = flat[i]
        flat[i] = keep + eps
        up = f()
        flat[i] = keep - eps
        down = f()
        flat[i] = keep
        grads[j] = (up - down) / (2 * eps)
    return picks, grads


def check_layer_gradients(layer, input_shapes, batch: int = 3, seed: int = 0, inputs=None,
                          rtol: float = 1e-5, atol: float = 1e-7):
    """Compare layer.backward with finite differences of sum(forward(...) * dy), for inputs and weights.

    `inputs` may give some or all input arrays (e.g. integer ids); the rest are drawn from N(0, 1)."""
    rng = np.random.default_rng(seed)
    shapes = layer.weight_shapes(list(input_shapes))
    weights = {k: np.asarray(v, dtype=np.float64) * 0 + rng.normal(size=v.shape)
               for k, v in layer.init_weights(shapes, rng).items()}
    xs = list(inputs) if inputs is not None else [rng.normal(size=(batch, *s)) for s in input_shapes]
    y, cache = layer.forward(weights, xs, Training())
    dy = rng.normal(size=y.shape)
    grads = {k: np.zeros_like(v) for k, v in weights.items()}
    dxs = layer.backward(weights, grads, cache, dy.copy())

    def loss():
        out, _ = layer.forward(weights, xs, Training())
        return float(np.sum(out * dy))

    for x, dx in zip(xs, dxs):
        if not np.issubdtype(x.dtype, np.floating):
            continue
        picks, expected = numeric_gradient(loss, x, rng=rng)
        np.testing.assert_allclose(np.asarray(dx).reshape(-1)[picks], expected, rtol=rtol, atol=atol,
                                   err_msg=f"{type(layer).__name__}: input gradient")
    for name, w in weights.items():
        picks, expected = numeric_gradient(loss, w, rng=rng)
        np.testing.assert_allclose(grads[name].reshape(-1)[picks], expected, rtol=rtol, atol=atol,
                                   err_msg=f"{type(layer).__name__}: gradient of {name}")
    return y
