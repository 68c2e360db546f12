"""Optimizers: each one and each option stepped next to Keras' update rule written out in numpy (float64, to
rounding), and next to Keras itself (`keras.optimizers.X(...).apply_gradients` on float32 variables); the
spellings, arguments and refusals of the spec format."""
import math

import numpy as np
import pytest

from specc.spec.format import Compile
from specc.train.optimizers import OPTIMIZERS, NonFiniteGradients, Optimizer
from support import assert_keras_arguments, assert_same_names, keras_class_of, run

SHAPES = [(3, 4), (5,), (2, 3)]  # the weight arrays, as one flat buffer for specc and three variables for Keras
STEPS = 5                        # enough for two accumulated updates of two batches and a partial third
# float32 against float32 after STEPS steps; Keras computes Adam's bias correction 1 - beta_2^t in float32,
# which cancels: up to about 1e-4 of the step size early on
KERAS_TOLERANCE = dict(rtol=1e-4, atol=1e-5)


# -- Keras' rules in numpy: update_step of each keras.optimizers class, for one variable ----------------------

def sgd(c):
    def step(w, g, s, lr, t):
        if not c.momentum:
            return w - lr * g
        s["m"] = c.momentum * s.get("m", 0) - lr * g
        return w + (c.momentum * s["m"] - lr * g if c.nesterov else s["m"])
    return step


def rmsprop(c):
    def step(w, g, s, lr, t):
        s["v"] = c.rho * s.get("v", 0) + (1 - c.rho) * g * g
        denominator = s["v"] + c.epsilon
        if c.centered:
            s["a"] = c.rho * s.get("a", 0) + (1 - c.rho) * g
            denominator = s["v"] - s["a"] ** 2 + c.epsilon
        increment = lr * g / np.sqrt(denominator)
        if c.momentum:
            s["m"] = c.momentum * s.get("m", 0) + increment
            return w - s["m"]
        return w - increment
    return step


def adam(c):
    def step(w, g, s, lr, t):
        s["m"] = s.get("m", 0) + (g - s.get("m", 0)) * (1 - c.beta_1)
        s["v"] = s.get("v", 0) + (g * g - s.get("v", 0)) * (1 - c.beta_2)
        v = s["v"]
        if c.amsgrad:
            s["v_hat"] = v = np.maximum(s.get("v_hat", 0), s["v"])
        alpha = lr * np.sqrt(1 - c.beta_2 ** t) / (1 - c.beta_1 ** t)
        return w - s["m"] * alpha / (np.sqrt(v) + c.epsilon)
    return step


def adagrad(c):
    def step(w, g, s, lr, t):
        s["a"] = s.get("a", c.initial_accumulator_value) + g * g
        return w - lr * g / np.sqrt(s["a"] + c.epsilon)
    return step


def adadelta(c):
    def step(w, g, s, lr, t):
        def rms(x):
            return np.sqrt(x + c.epsilon)
        s["g"] = c.rho * s.get("g", 0) + (1 - c.rho) * g * g
        delta = -rms(s.get("d", 0)) * g / rms(s["g"])
        s["d"] = c.rho * s.get("d", 0) + (1 - c.rho) * delta * delta
        return w + lr * delta
    return step


def adamax(c):
    def step(w, g, s, lr, t):
        s["m"] = s.get("m", 0) + (g - s.get("m", 0)) * (1 - c.beta_1)
        s["u"] = np.maximum(c.beta_2 * s.get("u", 0), np.abs(g))
        return w - lr * s["m"] / ((1 - c.beta_1 ** t) * (s["u"] + c.epsilon))
    return step


def nadam(c):
    def step(w, g, s, lr, t):
        # Keras keeps the product of the u's in a variable, advanced once per update before the update
        s["u_product"] = s.get("u_product", 1.0) * c.beta_1 * (1 - 0.5 * 0.96 ** t)
        u_t, u_next = c.beta_1 * (1 - 0.5 * 0.96 ** t), c.beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
        s["m"] = s.get("m", 0) + (g - s.get("m", 0)) * (1 - c.beta_1)
        s["v"] = s.get("v", 0) + (g * g - s.get("v", 0)) * (1 - c.beta_2)
        m_hat = u_next * s["m"] / (1 - s["u_product"] * u_next) + (1 - u_t) * g / (1 - s["u_product"])
        v_hat = s["v"] / (1 - c.beta_2 ** t)
        return w - m_hat * lr / (np.sqrt(v_hat) + c.epsilon)
    return step


def lion(c):
    def step(w, g, s, lr, t):
        m = s.get("m", 0)
        w = w - lr * np.sign(m * c.beta_1 + g * (1 - c.beta_1))
        s["m"] = m * c.beta_2 + g * (1 - c.beta_2)
        return w
    return step


def ftrl(c):
    def step(w, g, s, lr, t):
        accumulator, power = s.get("n", c.initial_accumulator_value), -c.learning_rate_power
        l2 = c.l2_regularization_strength + c.beta / (2 * lr)
        new_accumulator = accumulator + g * g
        s["z"] = s.get("z", 0) + g + 2 * c.l2_shrinkage_regularization_strength * w \
            - (new_accumulator ** power - accumulator ** power) / lr * w
        quadratic = new_accumulator ** power / lr + 2 * l2
        s["n"] = new_accumulator
        l1 = c.l1_regularization_strength
        return (np.clip(s["z"], -l1, l1) - s["z"]) / quadratic
    return step


RULES = {"sgd": sgd, "rmsprop": rmsprop, "adam": adam, "adamw": adam, "adagrad": adagrad, "adadelta": adadelta,
         "adamax": adamax, "nadam": nadam, "lion": lion, "ftrl": ftrl}


class KerasInNumpy:
    """keras.optimizers' BaseOptimizer.apply in numpy, over a list of variables: gradients accumulated, then
    clipped, the weights decayed, each variable's update_step, the iteration counter advanced."""

    def __init__(self, c):
        self.c, self.rule, self.iterations = c, RULES[c.type](c), 0
        self.states: list[dict] = []
        self.accumulated: list = []

    def learning_rate(self):
        rate = self.c.learning_rate
        return rate if isinstance(rate, (int, float)) else rate(self.iterations)  # schedules: test_schedules.py

    def apply(self, ws, gs):
        c, every = self.c, self.c.gradient_accumulation_steps
        self.states = self.states or [{} for _ in ws]
        self.accumulated = self.accumulated or [np.zeros_like(w) for w in ws]
        if every:
            if (self.iterations + 1) % every:
                self.accumulated = [a + g for a, g in zip(self.accumulated, gs)]
                self.iterations += 1
                return ws
            gs = [(g + a) / every for g, a in zip(gs, self.accumulated)]
            self.accumulated = [np.zeros_like(w) for w in ws]
        if c.clipnorm:
            gs = [g * c.clipnorm / max(np.sqrt(np.sum(g * g)), c.clipnorm) for g in gs]
        elif c.global_clipnorm:
            norm = np.sqrt(sum(np.sum(g * g) for g in gs))
            gs = [g * c.global_clipnorm * min(1 / norm, 1 / c.global_clipnorm) for g in gs]
        elif c.clipvalue:
            gs = [np.clip(g, -c.clipvalue, c.clipvalue) for g in gs]
        lr = self.learning_rate()
        if c.weight_decay is not None:
            ws = [w - w * c.weight_decay * lr for w in ws]
        t = self.iterations // (every or 1) + 1
        ws = [self.rule(w, g, s, lr, t) for w, g, s in zip(ws, gs, self.states)]
        self.iterations += 1
        return ws


def schedule(type_, **arguments):
    return {"type": type_, **arguments}


CASES = [
    {"type": "sgd"}, {"type": "sgd", "momentum": 0.9}, {"type": "sgd", "momentum": 0.9, "nesterov": True},
    {"type": "sgd", "learning_rate": 0.0, "momentum": 0.5},
    {"type": "rmsprop"}, {"type": "rmsprop", "momentum": 0.5, "centered": True, "rho": 0.8},
    {"type": "adam"}, {"type": "adam", "learning_rate": 0.01, "beta_1": 0.5}, {"type": "adam", "amsgrad": True},
    {"type": "adamw"}, {"type": "adamw", "weight_decay": 0.1, "amsgrad": True, "learning_rate": 0.05},
    {"type": "adagrad"}, {"type": "adagrad", "initial_accumulator_value": 0.5, "epsilon": 1e-3},
    {"type": "adadelta"}, {"type": "adadelta", "learning_rate": 1.0, "rho": 0.8},
    {"type": "adamax"}, {"type": "adamax", "beta_1": 0.5, "learning_rate": 0.01},
    {"type": "nadam"}, {"type": "nadam", "beta_2": 0.9, "learning_rate": 0.01},
    {"type": "lion"}, {"type": "lion", "beta_1": 0.5, "beta_2": 0.9},
    {"type": "ftrl"}, {"type": "ftrl", "learning_rate": 0.1, "learning_rate_power": -0.7, "beta": 0.1,
                       "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02,
                       "l2_shrinkage_regularization_strength": 0.03},
    # the options every optimizer takes
    {"type": "sgd", "clipnorm": 1.0}, {"type": "adam", "clipnorm": 0.5}, {"type": "rmsprop", "clipvalue": 0.2},
    {"type": "sgd", "clipnorm": 3.0},  # some weight arrays' gradients within the norm, some beyond
    {"type": "sgd", "global_clipnorm": 1.0}, {"type": "lion", "global_clipnorm": 0.5},
    {"type": "sgd", "weight_decay": 0.5, "momentum": 0.9}, {"type": "adagrad", "weight_decay": 0.1},
    {"type": "adam", "gradient_accumulation_steps": 3}, {"type": "sgd", "gradient_accumulation_steps": 2},
    {"type": "nadam", "gradient_accumulation_steps": 2},
    {"type": "adamw", "gradient_accumulation_steps": 2, "clipnorm": 0.5,
     "learning_rate": schedule("CosineDecay", initial_learning_rate=0.01, decay_steps=4, warmup_target=0.1,
                               warmup_steps=2)},
    {"type": "sgd", "learning_rate": schedule("PiecewiseConstantDecay", boundaries=[1, 3], values=[0.5, 0.1, 0.01])},
    {"type": "adam", "learning_rate": schedule("ExponentialDecay", initial_learning_rate=0.1, decay_steps=2,
                                               decay_rate=0.5, staircase=True)},
]


def optimizer_of(case):
    """The optimizer a spec's `compile.optimizer: <case>` gives."""
    return Compile.model_validate({"optimizer": case, "loss": "mse"}).optimizer


def case_id(case: dict) -> str:
    return "-".join(f"{k}={v['type'] if isinstance(v, dict) else v}" for k, v in case.items())


def draws(dtype):
    """The start and the gradients of every step, as arrays of SHAPES."""
    rng = np.random.default_rng(7)
    start = [rng.normal(size=shape).astype(dtype) for shape in SHAPES]
    steps = [[rng.normal(size=shape).astype(dtype) for shape in SHAPES] for _ in range(STEPS)]
    return start, steps


def specc_steps(config, start, steps, dtype):
    """specc's optimizer over the arrays in one flat buffer; the arrays after every step."""
    sizes = [math.prod(shape) for shape in SHAPES]
    optimizer = Optimizer(config, sum(sizes), dtype, sizes)
    flat = np.concatenate([w.ravel() for w in start])
    after = []
    for grads in steps:
        optimizer.step(flat, np.concatenate([g.ravel() for g in grads]))
        after.append(np.split(flat.copy(), np.cumsum(sizes)[:-1]))
    return optimizer, after


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_keras_rule(case):
    config = optimizer_of(case)
    start, steps = draws(np.float64)
    _, ours = specc_steps(config, start, steps, np.float64)
    reference, ws = KerasInNumpy(config), start
    for t, grads in enumerate(steps):
        ws = reference.apply(ws, grads)
        for mine, theirs in zip(ours[t], ws):
            np.testing.assert_allclose(mine, theirs.ravel(), rtol=1e-12, atol=1e-14, err_msg=f"step {t + 1}")
    moved = not all(np.allclose(w, s.ravel()) for w, s in zip(ours[-1], start))
    assert moved == (config.learning_rate != 0)


def keras_optimizer(keras, case: dict):
    arguments = {k: v for k, v in case.items() if k != "type"}
    if isinstance(arguments.get("learning_rate"), dict):
        rate = dict(arguments["learning_rate"])
        arguments["learning_rate"] = getattr(keras.optimizers.schedules, rate.pop("type"))(**rate)
    return keras_class_of(keras.optimizers, case["type"])(**arguments)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_keras(case, keras):
    """Keras' own optimizer, eagerly (no compiled function per case), on float32 variables."""
    start, steps = draws(np.float32)
    _, ours = specc_steps(optimizer_of(case), start, steps, np.float32)
    variables = [keras.Variable(w) for w in start]
    theirs = keras_optimizer(keras, case)
    for t, grads in enumerate(steps):
        theirs.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
        for mine, variable in zip(ours[t], variables):
            np.testing.assert_allclose(mine, keras.ops.convert_to_numpy(variable.value).ravel(),
                                       **KERAS_TOLERANCE, err_msg=f"step {t + 1}")


def test_every_optimizer_is_checked_against_keras_rules():
    """CASES steps each optimizer next to Keras' update rule and next to Keras."""
    assert_same_names(OPTIMIZERS, {case["type"] for case in CASES}, "optimizers (CASES)")
    assert_same_names(OPTIMIZERS, RULES, "optimizers (RULES)")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_arguments_are_keras_arguments(name, keras):
    assert_keras_arguments(OPTIMIZERS[name], keras_class_of(keras.optimizers, name), skip={"type"})


@pytest.mark.parametrize("spelled,meant", [("adam", "adam"), ("Adam", "adam"), ("AdamW", "adamw"), ("SGD", "sgd"),
                                           ("RMSprop", "rmsprop"), ("Nadam", "nadam"), ("Ftrl", "ftrl")])
def test_keras_identifiers_and_class_names(spelled, meant):
    assert optimizer_of(spelled).type == meant
    assert optimizer_of({"type": spelled, "learning_rate": 0.5}).learning_rate == 0.5


def test_keras_defaults():
    assert [optimizer_of(name).learning_rate for name in ("sgd", "rmsprop", "adam", "adagrad")] \
        == [0.01, 0.001, 0.001, 0.001]
    assert optimizer_of("adamw").weight_decay == 0.004 and optimizer_of("adam").weight_decay is None


def spec_with_optimizer(tmp_path, optimizer: str):
    path = tmp_path / "spec.yaml"
    path.write_text("specc: 1\ninputs: {x: {shape: [3]}}\nlayers:\n  d: {type: Dense, units: 1, inputs: x}\n"
                    f"outputs: d\ncompile:\n  optimizer: {optimizer}\n  loss: mse\n")
    return path


@pytest.mark.parametrize("optimizer,key,words", [
    ("{type: adam, clipnorm: 1.0, clipvalue: 0.5}", "clipvalue", "clipnorm is given too"),
    ("{type: sgd, clipvalue: 1.0, global_clipnorm: 0.5}", "global_clipnorm", "clipvalue is given too"),
    ("{type: sgd, clipnorm: 1.0, global_clipnorm: 0.5}", "global_clipnorm", "clipnorm is given too"),
    ("{type: adam, gradient_accumulation_steps: 1}", "gradient_accumulation_steps", "greater than or equal to 2"),
    ("{type: sgd, learning_rate: -0.1}", "learning_rate", "greater than or equal to 0"),
    ("{type: lion, beta_1: 0}", "beta_1", "greater than 0"),
    ("{type: ftrl, learning_rate_power: 0.5}", "learning_rate_power", "less than or equal to 0"),
    ("{type: adamw, weight_decay: null}", "weight_decay", "a number"),
])
def test_refused_as_keras_refuses(tmp_path, optimizer, key, words):
    result = run("validate", spec_with_optimizer(tmp_path, optimizer))
    assert result.returncode == 1
    assert f"compile.optimizer.{key}: " in result.stderr and words in result.stderr, result.stderr


def test_learning_rate_zero_is_valid(tmp_path):
    assert run("validate", spec_with_optimizer(tmp_path, "{type: sgd, learning_rate: 0}")).returncode == 0


def test_non_finite_gradients_leave_the_accumulation_untouched():
    optimizer = Optimizer(optimizer_of({"type": "adam", "gradient_accumulation_steps": 2}), 3, np.float64)
    w = np.ones(3)
    optimizer.step(w, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(NonFiniteGradients):
        optimizer.step(w, np.array([1.0, np.nan, 3.0]))
    assert optimizer.iterations == 1
    np.testing.assert_array_equal(optimizer.state["gradient_accumulator"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(w, np.ones(3))


def test_clipnorm_clips_each_weight_array_of_a_model(tmp_path):
    """A model's optimizer knows its weight arrays (kernel and bias of each layer), as Keras' variables."""
    import specc
    path = tmp_path / "spec.yaml"
    path.write_text("specc: 1\ninputs: {x: {shape: [3]}}\nlayers:\n  a: {type: Dense, units: 4, inputs: x}\n"
                    "  b: {type: Dense, units: 2, inputs: a}\noutputs: b\n"
                    "compile: {optimizer: {type: sgd, clipnorm: 1.0}, loss: mse}\n")
    optimizer = specc.load(path).optimizer
    np.testing.assert_array_equal(np.diff(optimizer.bounds), [3 * 4, 4, 4 * 2, 2])
