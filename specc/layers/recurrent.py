"""Recurrent layers with Keras semantics: LSTM, GRU, SimpleRNN.

LSTM: kernel (features, 4u), recurrent_kernel (u, 4u), bias (4u), gate order i, f, c, o:

    i = ract(x Wi + h Ui + bi)   f = ract(x Wf + h Uf + bf)   g = act(x Wc + h Uc + bc)   o = ract(...)
    c = f * c + i * g            h = o * act(c)

GRU: kernel (features, 3u), recurrent_kernel (u, 3u), bias (2, 3u) with reset_after (Keras' default), else
(3u); gate order z, r, h (kernels/gru.py has the equations). SimpleRNN: h = act(x W + h U + b).

What they share (Recurrent): the state starts at zero or at `initial_state` (tensors, inputs of the node
after the sequence); `go_backwards` reads the steps last to first (and returns them in that order, as
Keras); `dropout` multiplies the inputs and `recurrent_dropout` the state fed to recurrent_kernel by one
mask per sequence, drawn in training only (Keras draws one per gate when recurrent_dropout is set; here
the gates share it); a mask (from Embedding(mask_zero) or Masking) makes a masked step carry the state
over, so the last output is the last unmasked step's; `return_sequences`, `return_state` as Keras:
outputs (output, h[, c]).

Work split (the hot path of the recurrent benchmarks): the input projection of all timesteps is ONE
BLAS GEMM, (batch*T, F) @ kernel + bias; per step, h_{t-1} @ recurrent_kernel is one small BLAS GEMM and
all the rest of the step is one fused numba kernel call over the batch (kernels.lstm.forward_step).
Backward mirrors it (backward_step + dz_t @ recurrent_kernel.T per step), then one GEMM each over all
timesteps gives d kernel, d recurrent_kernel and dx. kernels/lstm.py says why (measurements). States are
kept as (T+1, batch, u): row 0 the initial state, row t+1 step t's.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import AfterValidator, Field, PositiveInt

from .. import kernels
from ..kernels.activation_codes import NEEDS_INPUT, ROW_WISE
from ..registry import Config
from ..runtime.blas import matmul
from .activations import ACTIVATIONS, ActivationName
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
from .noise import dropout_mask, seed_field


def _recurrent_activation(name: str) -> str:
    """The kernels keep only the gates' values: an activation's derivative must follow from its output."""
    if ACTIVATIONS[name] in ROW_WISE + NEEDS_INPUT:
        refused = ", ".join(n for n in ACTIVATIONS.names(with_aliases=True) if ACTIVATIONS[n] in ROW_WISE + NEEDS_INPUT)
        raise ValueError(f"'{name}' is not available in recurrent layers, which take the element-wise "
                         f"activations whose derivative follows from their output (not {refused})")
    return name


RecurrentActivationName = Annotated[ActivationName, AfterValidator(_recurrent_activation)]


class RecurrentArguments(Config):
    """Keras' arguments for a recurrent layer's `recurrent_kernel`."""
    recurrent_initializer: InitializerArgument = "orthogonal"
    recurrent_regularizer: Optional[RegularizerArgument] = None
    recurrent_constraint: Optional[ConstraintArgument] = None


NO_MASK = np.zeros((0, 0), np.bool_)  # the step kernels' `keep` when every step of every row counts


def _not_stateful(value: bool) -> bool:
    if value:
        raise ValueError("stateful recurrent layers (the state kept from one batch to the next) are not "
                         "available; pass states between layers with `return_state` and `initial_state`")
    return value


def _states(T: int, B: int, u: int, dtype, initial: Optional[np.ndarray]) -> np.ndarray:
    """(T+1, B, u): row 0 the state before the first step (zero, or the initial state given), row t+1 step t's."""
    states = np.empty((T + 1, B, u), dtype)
    states[0] = 0 if initial is None else initial
    return states


def _masked(h: np.ndarray, recurrent_mask: Optional[np.ndarray]) -> np.ndarray:
    """The state as recurrent_kernel sees it: times the recurrent dropout mask in training."""
    return h if recurrent_mask is None else h * recurrent_mask


def _state_gradient(d_states: list, index: int, shape: tuple, dtype) -> np.ndarray:
    """A writable d loss / d (final state): what reaches output `1 + index`, or zeros."""
    given = d_states[index] if index < len(d_states) else None
    return np.zeros(shape, dtype) if given is None else np.array(given, dtype=dtype)


def _previous_state_gradient(dz_t, UT, dh, recurrent_mask, carried_t):
    """d loss / d h_{t-1} through recurrent_kernel (and the recurrent dropout mask); in a row whose step t is
    masked (carried_t), dh as it is: the state went through unchanged."""
    if recurrent_mask is None and carried_t is None:
        return matmul(dz_t, UT, out=dh)
    through = matmul(dz_t, UT)
    if recurrent_mask is not None:
        through *= recurrent_mask
    if carried_t is not None:
        np.copyto(through, dh, where=carried_t)
    return through


class Recurrent(KernelArguments, RecurrentArguments, BiasArguments, ActivityArguments, Layer):
    """What LSTM, GRU and SimpleRNN share: Keras' RNN arguments and everything around the recurrence itself
    (the input projection, dropout, direction, masks, initial and final states, the outputs). A subclass
    gives `_recur` (the steps forward) and `_unrecur` (backward through them)."""
    units: PositiveInt = Field(description="Size of the hidden state and of the output's last axis.")
    activation: RecurrentActivationName = Field("tanh", description="Of the state update.")
    use_bias: bool = True
    dropout: float = Field(0.0, ge=0, le=1, description="Fraction of the input features dropped, in training "
                                                       "(one mask per sequence).")
    recurrent_dropout: float = Field(0.0, ge=0, le=1, description="Fraction of the state's units dropped where "
                                                                 "it feeds the next step, in training.")
    seed: Optional[int] = seed_field()
    return_sequences: bool = Field(False, description="Output every step's h (timesteps, units), "
                                                     "not only the last (units).")
    return_state: bool = Field(False, description="Also output the final states: NAME.0 the output, NAME.1, "
                                                 "... the states (h, and c for an LSTM).")
    go_backwards: bool = Field(False, description="Read the steps last to first (the output sequence comes in "
                                                 "that order too).")
    stateful: Annotated[bool, AfterValidator(_not_stateful)] = Field(
        False, description="Not available: pass states with return_state and initial_state.")
    unroll: bool = Field(False, description="Keras' loop unrolling; the same numbers either way.")
    initial_state: Optional[Union[str, list[str]]] = Field(
        None, description="Tensors the state starts from (h, and c for an LSTM), each of shape (None, units); "
                          "default zeros.")

    call_arguments: ClassVar[frozenset[str]] = frozenset({"initial_state"})
    tensor_arguments: ClassVar[tuple[str, ...]] = ("initial_state",)
    supports_masking: ClassVar[bool] = True
    reads_masks: ClassVar[bool] = True
    state_count: ClassVar[int] = 1  # h; an LSTM's c too
    gate_count: ClassVar[int] = 1   # blocks of `units` columns in kernel

    def output_count(self) -> int:
        return 1 + self.state_count if self.return_state else 1

    def output_shape(self, input_shapes: list[Shape]):
        shape, *states = input_shapes
        name, u = type(self).__name__, self.units
        if len(shape) != 2:
            raise ShapeError(f"{name} needs input of shape (None, timesteps, features); got {show_shape(shape)}")
        if states and (len(states) != self.state_count or any(tuple(s) != (u,) for s in states)):
            raise ShapeError(f"initial_state needs {self.state_count} tensor(s) of shape (None, {u}); got "
                             + ", ".join(map(show_shape, states)))
        output = (shape[0], u) if self.return_sequences else (u,)
        return [output, *[(u,)] * self.state_count] if self.return_state else output

    def compute_mask(self, xs: list, masks: list) -> Any:
        """The sequence's mask goes on with the sequence output; a last output or a state has none."""
        output = masks[0] if self.return_sequences else None
        return [output, *[None] * self.state_count] if self.return_state else output

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        u, g = self.units, self.gate_count
        shapes: dict[str, Shape] = {"kernel": (input_shapes[0][-1], g * u), "recurrent_kernel": (u, g * u)}
        if self.use_bias:
            shapes["bias"] = (g * u,)
        return shapes

    def _input_bias(self, weights) -> Any:
        return weights["bias"] if self.use_bias else 0

    def forward(self, weights, xs, training, masks=None):
        x, *initial = xs
        B, T, F = x.shape
        kernel = weights["kernel"]
        dtype = np.result_type(x.dtype, kernel.dtype)
        keep = NO_MASK if masks is None or masks[0] is None else masks[0]
        if self.go_backwards:
            x, keep = x[:, ::-1], keep[:, ::-1]
        keep = np.ascontiguousarray(keep.T)  # time-major, as the kernels' arrays
        rng = training.rng(self.seed) if training and (self.dropout or self.recurrent_dropout) else None
        dropped = None if rng is None or not self.dropout else dropout_mask((B, F), self.dropout, rng)
        recurrent_mask = None if rng is None or not self.recurrent_dropout else \
            dropout_mask((B, self.units), self.recurrent_dropout, rng)
        x = np.ascontiguousarray(x if dropped is None else x * dropped[:, None, :])
        xw = matmul(x.reshape(B * T, F), kernel).reshape(B, T, -1)
        # time-major from here on: each step's rows are one contiguous block (prefetch-friendly,
        # and the per-step GEMMs get contiguous operands); the bias add rides on the transposing copy
        z = np.empty((T, B, xw.shape[-1]), dtype)
        np.add(xw.transpose(1, 0, 2), self._input_bias(weights), out=z)
        hs, final, cache = self._recur(weights, z, [np.asarray(s, dtype) for s in initial], recurrent_mask, keep,
                                       dtype)
        y = np.ascontiguousarray(hs[1:].transpose(1, 0, 2)) if self.return_sequences else hs[T].copy()
        if self.return_state:
            y = (y, *(state.copy() for state in final))
        return y, (x, dropped, recurrent_mask, keep, len(initial), cache)

    def backward(self, weights, grads, cache, dy, need_dx=True):
        x, dropped, recurrent_mask, keep, initial_count, inner = cache
        B, T, F = x.shape
        dtype = np.result_type(x.dtype, weights["kernel"].dtype)
        d_output, *d_states = dy if isinstance(dy, list) else [dy]
        if d_output is None:  # only the final states reach a loss
            dseq = np.zeros((1, B, self.units), dtype)
        else:
            dseq = np.ascontiguousarray(d_output.transpose(1, 0, 2) if self.return_sequences else d_output[None],
                                        dtype=dtype)
        need_initial = need_dx and initial_count > 0
        dz, d_initial = self._unrecur(weights, grads, inner, dseq, d_states, recurrent_mask, keep, need_initial,
                                      dtype)
        dz = np.ascontiguousarray(dz.transpose(1, 0, 2)).reshape(B * T, -1)  # back to x's row order
        grads["kernel"] += matmul(x.reshape(B * T, F).T, dz)
        if not need_dx:
            return [None] * (1 + initial_count)
        dx = matmul(dz, weights["kernel"].T).reshape(B, T, F)
        if dropped is not None:
            dx *= dropped[:, None, :]
        return [np.ascontiguousarray(dx[:, ::-1]) if self.go_backwards else dx, *d_initial]

    def _recur(self, weights, z, initial: list, recurrent_mask, keep, dtype) -> tuple[np.ndarray, list, Any]:
        """The steps over z (T, B, gates * u), the input projection: (states h (T+1, B, u), [final states],
        what _unrecur needs)."""
        raise NotImplementedError

    def _unrecur(self, weights, grads, cache, dseq, d_states: list, recurrent_mask, keep, need_initial: bool,
                 dtype) -> tuple[np.ndarray, list]:
        """Backward through the steps: (d z (T, B, gates * u), [d initial state] when need_initial); adds the
        recurrent kernel's and the bias' gradients."""
        raise NotImplementedError

    def _previous_states(self, hs: np.ndarray, first: int, recurrent_mask) -> np.ndarray:
        """h_{t-1} as recurrent_kernel saw it, for the steps from `first` on, as rows."""
        return _masked(hs[first:-1], recurrent_mask).reshape(-1, self.units)


@LAYERS.register()
class LSTM(Recurrent):
    """Long short-term memory over (timesteps, features) inputs."""
    type: Literal["LSTM"]
    recurrent_activation: RecurrentActivationName = Field("sigmoid", description="For the i, f, o gates.")
    unit_forget_bias: bool = Field(True, description="The forget gate's bias starts at 1.")

    state_count: ClassVar[int] = 2
    gate_count: ClassVar[int] = 4

    def init_weights(self, shapes: dict[str, Shape], rng: np.random.Generator) -> dict[str, np.ndarray]:
        weights = super().init_weights(shapes, rng)
        if "bias" in weights and self.unit_forget_bias:
            weights["bias"][self.units: 2 * self.units] = 1.0
        return weights

    def _recur(self, weights, z, initial, recurrent_mask, keep, dtype):
        T, B, _ = z.shape
        u = self.units
        z = z.reshape(T, B, 4, u)  # gate-major rows: the kernels' loops all start at 0 (kernels/lstm.py)
        U = np.asarray(weights["recurrent_kernel"], dtype=dtype)
        hs = _states(T, B, u, dtype, initial[0] if initial else None)
        cs = _states(T, B, u, dtype, initial[1] if initial else None)
        ac = np.empty((T, B, u), dtype)
        r = np.zeros((B, 4, u), dtype)
        r2 = r.reshape(B, 4 * u)
        act, ract = ACTIVATIONS[self.activation], ACTIVATIONS[self.recurrent_activation]
        fast = bool(dtype == np.float32)
        step = kernels.lstm.forward_step
        for t in range(T):
            if t > 0 or initial:  # a zero state adds nothing
                matmul(_masked(hs[t], recurrent_mask), U, out=r2)
            step(z, r, t, act, ract, fast, hs, cs, ac, keep)
        return hs, [hs[T], cs[T]], (z, hs, cs, ac, 0 if initial else 1)

    def _unrecur(self, weights, grads, cache, dseq, d_states, recurrent_mask, keep, need_initial, dtype):
        gates, hs, cs, ac, first = cache
        T, B, _, u = gates.shape
        # a contiguous copy: OpenBLAS runs (B, 4u) @ (4u, u) ~4x slower on the transposed view
        UT = np.ascontiguousarray(weights["recurrent_kernel"].T, dtype=dtype)
        dz = np.empty_like(gates)
        dh = _state_gradient(d_states, 0, (B, u), dtype)
        dc = _state_gradient(d_states, 1, (B, u), dtype)
        carried = ~keep[:, :, None] if keep.size else None
        act, ract = ACTIVATIONS[self.activation], ACTIVATIONS[self.recurrent_activation]
        step = kernels.lstm.backward_step
        for t in range(T - 1, -1, -1):
            step(dseq, t, gates, cs, ac, act, ract, dh, dc, dz, keep)
            if t > 0 or need_initial:
                dh = _previous_state_gradient(dz[t].reshape(B, 4 * u), UT, dh, recurrent_mask,
                                              None if carried is None else carried[t])
        dz = dz.reshape(T, B, 4 * u)
        if self.use_bias:
            grads["bias"] += dz.sum(axis=(0, 1))
        if T > first:  # without an initial state, h_{-1} = 0 adds nothing
            grads["recurrent_kernel"] += matmul(self._previous_states(hs, first, recurrent_mask).T,
                                                dz[first:].reshape(-1, 4 * u))
        return dz, [dh, dc] if need_initial else []


@LAYERS.register()
class GRU(Recurrent):
    """Gated recurrent unit over (timesteps, features) inputs (Keras 3: reset_after by default)."""
    type: Literal["GRU"]
    recurrent_activation: RecurrentActivationName = Field("sigmoid", description="For the z and r gates.")
    reset_after: bool = Field(True, description="Apply the reset gate after recurrent_kernel (Keras 3's "
                                                "default, a bias of shape (2, 3 * units)), or before it.")

    gate_count: ClassVar[int] = 3

    def weight_shapes(self, input_shapes: list[Shape]) -> dict[str, Shape]:
        shapes = super().weight_shapes(input_shapes)
        if self.use_bias and self.reset_after:
            shapes["bias"] = (2, 3 * self.units)
        return shapes

    def _input_bias(self, weights):
        return weights["bias"][0] if self.use_bias and self.reset_after else super()._input_bias(weights)

    def _recur(self, weights, z, initial, recurrent_mask, keep, dtype):
        T, B, _ = z.shape
        u, reset_after = self.units, self.reset_after
        z = z.reshape(T, B, 3, u)
        U = np.asarray(weights["recurrent_kernel"], dtype=dtype)
        has_recurrent_bias = self.use_bias and reset_after
        rb = np.asarray(weights["bias"][1] if has_recurrent_bias else np.zeros(3 * u), dtype).reshape(3, u)
        hs = _states(T, B, u, dtype, initial[0] if initial else None)
        mh = np.empty((T, B, u), dtype)
        m = np.zeros((B, 3 if reset_after else 2, u), dtype)
        m2 = m.reshape(B, -1)
        U_gates = U if reset_after else np.ascontiguousarray(U[:, :2 * u])
        U_candidate = None if reset_after else np.ascontiguousarray(U[:, 2 * u:])
        rh = None if reset_after else np.empty((T, B, u), dtype)  # r * h_{t-1}, the candidate GEMM's input
        act, ract = ACTIVATIONS[self.activation], ACTIVATIONS[self.recurrent_activation]
        fast = bool(dtype == np.float32)
        gates, state = kernels.gru.forward_gates, kernels.gru.forward_state
        for t in range(T):
            h = _masked(hs[t], recurrent_mask)
            if t > 0 or initial:  # a zero state adds nothing
                matmul(h, U_gates, out=m2)
            gates(z, m, rb, t, ract, fast, mh, reset_after, keep)
            if rh is not None:
                np.multiply(z[t, :, 1], h, out=rh[t])
                matmul(rh[t], U_candidate, out=mh[t])
            state(z, mh, t, act, fast, hs, reset_after, keep)
        return hs, [hs[T]], (z, hs, mh, rh, 0 if initial else 1)

    def _unrecur(self, weights, grads, cache, dseq, d_states, recurrent_mask, keep, need_initial, dtype):
        gates, hs, mh, rh, first = cache
        T, B, _, u = gates.shape
        reset_after = self.reset_after
        U = weights["recurrent_kernel"]
        dgx = np.empty_like(gates)  # d (x @ kernel + input bias)
        dgm = np.empty_like(gates) if reset_after else np.empty((0, 0, 0, 0), dtype)  # d (h @ U + b')
        carry = np.empty((B, u), dtype)
        dh = _state_gradient(d_states, 0, (B, u), dtype)
        UT = np.ascontiguousarray(U.T, dtype=dtype)  # (3u, u)
        act, ract = ACTIVATIONS[self.activation], ACTIVATIONS[self.recurrent_activation]
        candidate, reset = kernels.gru.backward_candidate, kernels.gru.backward_reset
        for t in range(T - 1, -1, -1):
            candidate(dseq, t, gates, hs, mh, act, ract, reset_after, dh, dgx, dgm, carry, keep)
            if reset_after:
                if t == 0 and not need_initial:
                    break
                through = matmul(dgm[t].reshape(B, 3 * u), UT)
            else:
                drh = matmul(dgx[t, :, 2], UT[2 * u:])  # d (r * h_{t-1})
                reset(drh, t, gates, _masked(hs[t], recurrent_mask), ract, dgx, keep)
                if t == 0 and not need_initial:
                    break
                through = drh + matmul(dgx[t, :, :2].reshape(B, 2 * u), UT[:2 * u])
            if recurrent_mask is not None:
                through *= recurrent_mask
            dh = carry + through
        h_rows = self._previous_states(hs, first, recurrent_mask)
        rk = grads["recurrent_kernel"]
        if reset_after:
            if self.use_bias:
                grads["bias"][0] += dgx.sum(axis=(0, 1)).reshape(-1)
                grads["bias"][1] += dgm.sum(axis=(0, 1)).reshape(-1)
            rk += matmul(h_rows.T, dgm[first:].reshape(-1, 3 * u))
        else:
            if self.use_bias:
                grads["bias"] += dgx.sum(axis=(0, 1)).reshape(-1)
            rk[:, :2 * u] += matmul(h_rows.T, dgx[first:, :, :2].reshape(-1, 2 * u))
            rk[:, 2 * u:] += matmul(rh.reshape(-1, u).T, dgx[:, :, 2].reshape(-1, u))
        return dgx.reshape(T, B, 3 * u), [dh] if need_initial else []


@LAYERS.register()
class SimpleRNN(Recurrent):
    """A fully connected recurrence over (timesteps, features) inputs: h = act(x W + h U + b)."""
    type: Literal["SimpleRNN"]

    def _recur(self, weights, z, initial, recurrent_mask, keep, dtype):
        T, B, u = z.shape
        U = np.asarray(weights["recurrent_kernel"], dtype=dtype)
        hs = _states(T, B, u, dtype, initial[0] if initial else None)
        r = np.zeros((B, u), dtype)
        act = ACTIVATIONS[self.activation]
        fast = bool(dtype == np.float32)
        step = kernels.simple_rnn.forward_step
        for t in range(T):
            if t > 0 or initial:  # a zero state adds nothing
                matmul(_masked(hs[t], recurrent_mask), U, out=r)
            step(z, r, t, act, fast, hs, keep)
        return hs, [hs[T]], (z, hs, 0 if initial else 1)

    def _unrecur(self, weights, grads, cache, dseq, d_states, recurrent_mask, keep, need_initial, dtype):
        outputs, hs, first = cache
        T, B, u = outputs.shape
        UT = np.ascontiguousarray(weights["recurrent_kernel"].T, dtype=dtype)
        dz = np.empty_like(outputs)
        dh = _state_gradient(d_states, 0, (B, u), dtype)
        carried = ~keep[:, :, None] if keep.size else None
        act = ACTIVATIONS[self.activation]
        step = kernels.simple_rnn.backward_step
        for t in range(T - 1, -1, -1):
            step(dseq, t, outputs, act, dh, dz, keep)
            if t > 0 or need_initial:
                dh = _previous_state_gradient(dz[t], UT, dh, recurrent_mask, None if carried is None else carried[t])
        if self.use_bias:
            grads["bias"] += dz.sum(axis=(0, 1))
        if T > first:
            grads["recurrent_kernel"] += matmul(self._previous_states(hs, first, recurrent_mask).T,
                                                dz[first:].reshape(-1, u))
        return dz, [dh] if need_initial else []
