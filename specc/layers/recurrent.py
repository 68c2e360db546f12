"""LSTM with Keras semantics: weights kernel (features, 4u), recurrent_kernel (u, 4u), bias (4u), gate
order i, f, c, o, state starting at zero.

    i = ract(x Wi + h Ui + bi)   f = ract(x Wf + h Uf + bf)   g = act(x Wc + h Uc + bc)   o = ract(...)
    c = f * c + i * g            h = o * act(c)

Work split (the hot path of the recurrent benchmarks): the input projection of all timesteps is ONE
BLAS GEMM, (batch*T, F) @ kernel + bias; per step, h_{t-1} @ recurrent_kernel is one small BLAS GEMM and
all the rest of the step is one fused numba kernel call over the batch (kernels.lstm.forward_step).
Backward mirrors it (backward_step + dz_t @ recurrent_kernel.T per step), then one GEMM each over all
timesteps gives d kernel, d recurrent_kernel and dx. kernels/lstm.py says why (measurements).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

import numpy as np
from pydantic import Field, PositiveInt

from .. import kernels
from ..registry import Config
from ..runtime.blas import matmul
from .activations import ACTIVATIONS
from .base import (
    LAYERS,
    ActivityArguments,
    BiasArguments,
    ConstraintArgument,
    InitializerArgument,
    KernelArguments,
    Layer,
    RegularizerArgument,
    Shape,
    ShapeError,
    show_shape,
)

if TYPE_CHECKING:  # a Literal of the registry's names, built at import time: a type checker sees a str
    RecurrentActivationName = str
else:
    RecurrentActivationName = Literal["linear", "relu", "sigmoid", "tanh"]  # what the LSTM kernels compute


class RecurrentArguments(Config):
    """Keras' arguments for a recurrent layer's `recurrent_kernel`."""
    recurrent_initializer: InitializerArgument = "orthogonal"
    recurrent_regularizer: Optional[RegularizerArgument] = None
    recurrent_constraint: Optional[ConstraintArgument] = None


@LAYERS.register()
class LSTM(KernelArguments, RecurrentArguments, BiasArguments, ActivityArguments, Layer):
    """Long short-term memory over (timesteps, features) inputs."""
    type: Literal["LSTM"]
    units: PositiveInt = Field(description="Size of the hidden state and of the output's last axis.")
    activation: RecurrentActivationName = Field("tanh", description="For the cell candidate and output.")
    recurrent_activation: RecurrentActivationName = Field("sigmoid", description="For the i, f, o gates.")
    return_sequences: bool = Field(False, description="Output every step's h (timesteps, units), "
                                                     "not only the last (units).")
    use_bias: bool = True
    unit_forget_bias: bool = Field(True, description="The forget gate's bias starts at 1.")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 2:
            raise ShapeError(f"LSTM needs input of shape (None, timesteps, features); got {show_shape(shape)}")
        return (shape[0], self.units) if self.return_sequences else (self.units,)

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        u = self.units
        shapes: dict[str, Shape] = {"kernel": (input_shapes[0][-1], 4 * u), "recurrent_kernel": (u, 4 * u)}
        if self.use_bias:
            shapes["bias"] = (4 * u,)
        return shapes

    def init_weights(self, shapes: dict[str, Shape], rng: np.random.Generator) -> dict[str, np.ndarray]:
        weights = super().init_weights(shapes, rng)
        if "bias" in weights and self.unit_forget_bias:
            weights["bias"][self.units: 2 * self.units] = 1.0
        return weights

    def forward(self, weights, xs, training):
        x = xs[0]
        B, T, F = x.shape
        u = self.units
        kernel = weights["kernel"]
        dtype = np.result_type(x.dtype, kernel.dtype)
        xw = matmul(x.reshape(B * T, F), kernel).reshape(B, T, 4 * u)
        # time-major from here on: each step's rows are one contiguous block (prefetch-friendly,
        # and the per-step GEMMs get contiguous operands); the bias add rides on the transposing copy
        z = np.empty((T, B, 4 * u), dtype)
        np.add(xw.transpose(1, 0, 2), weights["bias"] if self.use_bias else 0, out=z)
        z = z.reshape(T, B, 4, u)  # gate-major rows: the kernels' loops all start at 0 (kernels/lstm.py)
        U = np.asarray(weights["recurrent_kernel"], dtype=dtype)
        hs, cs, ac = (np.empty((T, B, u), dtype) for _ in range(3))
        r = np.empty((B, 4, u), dtype)
        r2 = r.reshape(B, 4 * u)
        act, ract = ACTIVATIONS[self.activation], ACTIVATIONS[self.recurrent_activation]
        fast = bool(dtype == np.float32)
        step = kernels.lstm.forward_step
        for t in range(T):
            if t > 0:
                matmul(hs[t - 1], U, out=r2)
            step(z, r, t, act, ract, fast, hs, cs, ac)
        y = np.ascontiguousarray(hs.transpose(1, 0, 2)) if self.return_sequences else hs[-1].copy()
        return y, (x, z, hs, cs, ac)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x, gates, hs, cs, ac = cache
        B, T, F = x.shape
        u = self.units
        dtype = gates.dtype
        dy = np.ascontiguousarray(dy.transpose(1, 0, 2) if self.return_sequences else dy[None], dtype=dtype)
        # a contiguous copy: OpenBLAS runs (B, 4u) @ (4u, u) ~4x slower on the transposed view
        UT = np.ascontiguousarray(weights["recurrent_kernel"].T, dtype=dtype)
        dz = np.empty_like(gates)
        dh = np.zeros((B, u), dtype)
        dc = np.zeros((B, u), dtype)
        act, ract = ACTIVATIONS[self.activation], ACTIVATIONS[self.recurrent_activation]
        step = kernels.lstm.backward_step
        for t in range(T - 1, -1, -1):
            step(dy, t, gates, cs, ac, act, ract, dh, dc, dz)
            if t > 0:
                matmul(dz[t].reshape(B, 4 * u), UT, out=dh)
        dz = dz.reshape(T, B, 4 * u)
        if self.use_bias:
            grads["bias"] += dz.sum(axis=(0, 1))
        if T > 1:  # step t's h_{t-1} is hs[t-1]; h_{-1} = 0 adds nothing
            grads["recurrent_kernel"] += matmul(hs[:-1].reshape((T - 1) * B, u).T, dz[1:].reshape((T - 1) * B, 4 * u))
        dz = np.ascontiguousarray(dz.transpose(1, 0, 2)).reshape(B * T, 4 * u)  # back to x's row order
        grads["kernel"] += matmul(x.reshape(B * T, F).T, dz)
        return [matmul(dz, weights["kernel"].T).reshape(B, T, F) if need_dx else None]
