"""Keras' activations as ONNX operators, one small function each (the definitions are those of
specc/kernels/activations.py, which follow keras.activations with their default arguments)."""
from __future__ import annotations

from typing import Callable

from ..kernels.activations import LEAKY_SLOPE, SHRINK, SQUAREPLUS_B
from ..layers.activations import ACTIVATIONS
from .builder import GraphBuilder
from .errors import ExportError

Activation = Callable[[GraphBuilder, str], str]
ACTIVATION_OPS: dict[str, Activation] = {}


def activation(*names: str):
    def register(function: Activation) -> Activation:
        for name in names:
            ACTIVATION_OPS[name] = function
        return function
    return register


def apply_activation(g: GraphBuilder, x: str, name: str) -> str:
    """act(x) by the activation's name (or alias)."""
    canonical = ACTIVATIONS.canonical(name) or name
    if canonical not in ACTIVATION_OPS:
        raise ExportError(f"activation '{name}' has no ONNX form")
    return ACTIVATION_OPS[canonical](g, x)


def unary(op_type: str, **attributes) -> Activation:
    return lambda g, x: g.op(op_type, [x], **attributes)


def clip(g: GraphBuilder, x: str, low: float, high: float) -> str:
    return g.op("Clip", [x, g.const(low), g.const(high)])


def times_own(gate: Activation) -> Activation:
    """x * gate(x): silu, mish."""
    return lambda g, x: g.op("Mul", [x, gate(g, x)])


activation("linear")(lambda g, x: x)
activation("relu")(unary("Relu"))
activation("sigmoid")(unary("Sigmoid"))
activation("tanh")(unary("Tanh"))
activation("softmax")(unary("Softmax", axis=-1))
activation("log_softmax")(unary("LogSoftmax", axis=-1))
activation("elu")(unary("Elu", alpha=1.0))
activation("selu")(unary("Selu"))  # ONNX's default alpha and gamma are Keras' constants
activation("softplus")(unary("Softplus"))
activation("softsign")(unary("Softsign"))
activation("hard_sigmoid")(unary("HardSigmoid", alpha=1 / 6, beta=0.5))  # relu6(x + 3) / 6
activation("leaky_relu")(unary("LeakyRelu", alpha=LEAKY_SLOPE))
activation("exponential")(unary("Exp"))
activation("celu")(unary("Celu", alpha=1.0))
activation("soft_shrink")(unary("Shrink", lambd=SHRINK, bias=SHRINK))
activation("hard_shrink")(unary("Shrink", lambd=SHRINK, bias=0.0))
activation("hard_silu")(unary("HardSwish"))  # x * relu6(x + 3) / 6
activation("relu6")(lambda g, x: clip(g, x, 0.0, 6.0))
activation("hard_tanh")(lambda g, x: clip(g, x, -1.0, 1.0))
activation("silu")(times_own(unary("Sigmoid")))
activation("mish")(times_own(lambda g, x: g.op("Tanh", [g.op("Softplus", [x])])))


@activation("sparse_sigmoid")
def sparse_sigmoid(g, x):
    """0.5 * clip(x + 1, 0, 2)."""
    return g.op("Add", [g.op("Mul", [clip(g, x, -1.0, 1.0), g.const(0.5)]), g.const(0.5)])


@activation("sparse_plus")
def sparse_plus(g, x):
    """0 below -1, x above 1, 0.25 (x + 1)^2 between: 0.25 (clip(x, -1, 1) + 1)^2 + relu(x - 1)."""
    shifted = g.op("Add", [clip(g, x, -1.0, 1.0), g.const(1.0)])
    square = g.op("Mul", [g.op("Mul", [shifted, shifted]), g.const(0.25)])
    return g.op("Add", [square, g.op("Relu", [g.op("Sub", [x, g.const(1.0)])])])


@activation("log_sigmoid")
def log_sigmoid(g, x):
    """-softplus(-x)."""
    return g.op("Neg", [g.op("Softplus", [g.op("Neg", [x])])])


@activation("squareplus")
def squareplus(g, x):
    """0.5 (x + sqrt(x^2 + b))."""
    root = g.op("Sqrt", [g.op("Add", [g.op("Mul", [x, x]), g.const(SQUAREPLUS_B)])])
    return g.op("Mul", [g.op("Add", [x, root]), g.const(0.5)])


@activation("gelu")
def gelu(g, x):
    """Exact: 0.5 x (1 + erf(x / sqrt(2)))."""
    erf = g.op("Erf", [g.op("Mul", [x, g.const(0.5 ** 0.5)])])
    return g.op("Mul", [g.op("Mul", [x, g.const(0.5)]), g.op("Add", [erf, g.const(1.0)])])


@activation("tanh_shrink")
def tanh_shrink(g, x):
    return g.op("Sub", [x, g.op("Tanh", [x])])
