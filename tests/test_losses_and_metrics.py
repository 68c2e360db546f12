"""Every loss and metric against Keras' definition: losses as numpy references of Keras' functions (checked
against Keras itself when installed), their hand-written gradients against finite differences and against
Keras' gradients; metrics against Keras' metric objects fed the same batches (update_state on each, then
result()), including edge cases; the tables must list exactly the registries' names; specs that name them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
from gradcheck import numeric_gradient

from specc.model import Model
from specc.train.losses import LOSSES, canonical_loss
from specc.train.metrics import METRICS, canonical_metric
from specc.train.objective import Objective
from support import assert_keras_arguments, assert_same_names, keras_class_of, run

EPSILON = 1e-7  # keras.config.epsilon(): how far from 0 and 1 Keras clips probabilities in its losses


def loss_of(name: str, **options):
    value = {**canonical_loss(name), **options}
    return LOSSES[value["type"]].model_validate(value)


def metric_of(name: str, **options):
    value = {**canonical_metric(name), **options}
    return METRICS[value["type"]].model_validate(value)


# -- losses -----------------------------------------------------------------------------------------------
# Keras' loss functions, one value per position (the last axis reduced), written out from keras.losses.

def sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))


def log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def binary_crossentropy(pred, true, from_logits=False, label_smoothing=0.0, axis=-1):
    true = true * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:  # -t log(sigmoid(x)) - (1 - t) log(sigmoid(-x))
        return np.mean(true * np.logaddexp(0, -pred) + (1 - true) * np.logaddexp(0, pred), axis=-1)
    p = np.clip(pred, EPSILON, 1 - EPSILON)
    return np.mean(-(true * np.log(p) + (1 - true) * np.log(1 - p)), axis=-1)


def binary_focal_crossentropy(pred, true, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                              label_smoothing=0.0, axis=-1):
    true = true * (1 - label_smoothing) + 0.5 * label_smoothing
    p = sigmoid(pred) if from_logits else pred
    clipped = np.clip(p, EPSILON, 1 - EPSILON)
    bce = -(true * np.log(clipped) + (1 - true) * np.log(1 - clipped))
    focal = (1 - (true * p + (1 - true) * (1 - p))) ** gamma * bce
    if apply_class_balancing:
        focal = (true * alpha + (1 - true) * (1 - alpha)) * focal
    return np.mean(focal, axis=-1)


def categorical_crossentropy(pred, true, from_logits=False, label_smoothing=0.0, axis=-1):
    true = np.moveaxis(true, axis, -1)
    pred = np.moveaxis(pred, axis, -1)
    true = true * (1 - label_smoothing) + label_smoothing / true.shape[-1]
    if from_logits:
        return -np.sum(true * log_softmax(pred), axis=-1)
    p = np.clip(pred / pred.sum(-1, keepdims=True), EPSILON, 1 - EPSILON)
    return -np.sum(true * np.log(p), axis=-1)


def categorical_focal_crossentropy(pred, true, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    true = true * (1 - label_smoothing) + label_smoothing / true.shape[-1]
    if from_logits:
        pred = np.exp(log_softmax(pred))
    output = pred / pred.sum(-1, keepdims=True)
    clipped = np.clip(output, EPSILON, 1 - EPSILON)
    return np.sum(alpha * (1 - output) ** gamma * -true * np.log(clipped), axis=-1)


def sparse_categorical_crossentropy(pred, labels, from_logits=False, ignore_class=None, axis=-1):
    values = categorical_crossentropy(pred, np.eye(pred.shape[-1])[labels], from_logits)
    if ignore_class is None:
        return values
    valid = labels != ignore_class  # Keras masks them: the others weigh (positions / valid ones)
    return np.where(valid, values, 0) * (valid.size / valid.sum())


def mean_squared_error(pred, true):
    return np.mean((pred - true) ** 2, axis=-1)


def mean_absolute_error(pred, true):
    return np.mean(np.abs(pred - true), axis=-1)


def mean_absolute_percentage_error(pred, true):
    return 100 * np.mean(np.abs((true - pred) / np.maximum(np.abs(true), EPSILON)), axis=-1)


def mean_squared_logarithmic_error(pred, true):
    return np.mean((np.log(np.maximum(pred, EPSILON) + 1) - np.log(np.maximum(true, EPSILON) + 1)) ** 2, axis=-1)


def huber(pred, true, delta=1.0):
    error = np.abs(pred - true)
    return np.mean(np.where(error <= delta, 0.5 * error ** 2, delta * error - 0.5 * delta ** 2), axis=-1)


def log_cosh(pred, true):
    x = pred - true
    return np.mean(x + np.logaddexp(0, -2 * x) - np.log(2), axis=-1)


def cosine_similarity(pred, true, axis=-1):
    def normalize(x):
        return x / np.maximum(np.sqrt((x * x).sum(axis, keepdims=True)), EPSILON)
    return -np.sum(normalize(true) * normalize(pred), axis=axis)


def kl_divergence(pred, true, axis=-1):
    true, pred = np.clip(true, EPSILON, 1), np.clip(pred, EPSILON, 1)
    return np.sum(true * np.log(true / pred), axis=-1)


def poisson(pred, true):
    return np.mean(pred - true * np.log(pred + EPSILON), axis=-1)


def hinge_labels(true):
    return 2 * true - 1 if np.all((true == 0) | (true == 1)) else true


def hinge(pred, true):
    return np.mean(np.maximum(1 - hinge_labels(true) * pred, 0), axis=-1)


def squared_hinge(pred, true):
    return np.mean(np.maximum(1 - hinge_labels(true) * pred, 0) ** 2, axis=-1)


def categorical_hinge(pred, true):
    return np.maximum(np.max((1 - true) * pred, -1) - np.sum(true * pred, -1) + 1, 0)


LOSS_REFERENCES = {f.__name__: f for f in (
    binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy, categorical_focal_crossentropy,
    sparse_categorical_crossentropy, huber, log_cosh, cosine_similarity, kl_divergence, poisson, hinge,
    squared_hinge, categorical_hinge, mean_absolute_percentage_error, mean_squared_logarithmic_error)}
LOSS_REFERENCES.update(mse=mean_squared_error, mae=mean_absolute_error)
LOSS_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae", "bce": "binary_crossentropy",
                "kld": "kl_divergence", "mape": "mean_absolute_percentage_error",
                "msle": "mean_squared_logarithmic_error"}

# every option that changes the maths, per loss (the bare name: Keras' defaults)
LOSS_OPTIONS = {
    "binary_crossentropy": [{"from_logits": True}, {"label_smoothing": 0.2},
                            {"from_logits": True, "label_smoothing": 0.1}],
    "binary_focal_crossentropy": [{"gamma": 0.0}, {"gamma": 1.5, "apply_class_balancing": True, "alpha": 0.4},
                                  {"from_logits": True}, {"from_logits": True, "apply_class_balancing": True},
                                  {"label_smoothing": 0.1}],
    "categorical_crossentropy": [{"from_logits": True}, {"label_smoothing": 0.1},
                                 {"from_logits": True, "label_smoothing": 0.2}, {"axis": 1}],
    "categorical_focal_crossentropy": [{"from_logits": True}, {"gamma": 0.5, "alpha": 1.0}, {"label_smoothing": 0.1},
                                       {"from_logits": True, "gamma": 3.0}],
    "sparse_categorical_crossentropy": [{"from_logits": True}, {"ignore_class": 1},
                                        {"ignore_class": 0, "from_logits": True}],
    "huber": [{"delta": 0.3}],
    "cosine_similarity": [{"axis": 1}],
}


def loss_cases(shapes=((4, 3), (4, 2, 3))):
    cases = []
    for name in LOSSES.names(with_aliases=True):
        canonical = LOSSES.canonical(name)
        for options in [{}] + (LOSS_OPTIONS.get(name, []) if name == canonical else []):
            for shape in shapes:
                if options.get("axis") == 1 and len(shape) < 3:
                    continue  # on two axes, axis 1 is the last: the bare name covers it
                shown = ",".join(f"{k}={v}" for k, v in options.items())
                cases.append(pytest.param(name, options, shape, id=f"{name}[{shown}]-{len(shape)}d"))
    return cases


def loss_data(loss, shape: tuple, rng: np.random.Generator, safe: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets of a batch for this loss. Unless `safe`: probabilities that Keras clips,
    class scores whose rows do not sum to 1 (Keras renormalizes), logits of large magnitude. `safe` keeps to
    where the loss is smooth, for finite differences (logits stay large: their gradients must stay exact)."""
    logits = getattr(loss, "from_logits", False)
    kind = loss.targets
    if loss.type in ("poisson", "mean_squared_logarithmic_error"):
        pred = rng.uniform(0.1, 3, size=shape)
        return pred, rng.uniform(0, 3, size=shape)
    if loss.type == "kl_divergence":
        pred = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
        return pred, rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if kind == "values" or loss.type in ("hinge", "squared_hinge", "categorical_hinge"):
        pred = rng.normal(size=shape)
        if kind == "binary":
            return pred, rng.integers(0, 2, size=shape).astype(float)
        if kind == "one_hot":
            return pred, np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
        return pred, rng.normal(size=shape)
    if kind == "binary":
        true = rng.integers(0, 2, size=shape).astype(float)
        if logits:
            pred = rng.normal(scale=3, size=shape)
            pred.reshape(-1)[:4] = [40.0, -40.0, 35.0, -35.0]  # sure answers: sigmoid clipped or saturated
            return pred, true
        pred = rng.uniform(0.05, 0.95, size=shape)
        if not safe:
            pred.reshape(-1)[:3] = [0.0, 1.0, 1e-9]
        return pred, true
    classes = shape[-1]
    labels = rng.integers(0, classes, size=shape[:-1])
    if logits:
        pred = rng.normal(scale=3, size=shape)
        rows = pred.reshape(-1, classes)
        rows[0, labels.reshape(-1)[0]] = 60.0  # a sure right answer
        rows[1, (labels.reshape(-1)[1] + 1) % classes] = 60.0  # a sure wrong one
    else:
        pred = rng.dirichlet(np.ones(classes), size=shape[:-1]) * rng.uniform(0.5, 2, size=(*shape[:-1], 1))
        if not safe:
            rows, row_labels = pred.reshape(-1, classes), labels.reshape(-1)
            rows[0, row_labels[0]] = 1e-12  # clipped below: a sure wrong answer
            rows[1] = 1e-12
            rows[1, row_labels[1]] = 1.5    # clipped above: a sure right one
    return pred, (labels if kind == "labels" else np.eye(classes)[labels])


def keras_reduction(values: np.ndarray, sample_weight: Optional[np.ndarray]) -> float:
    """Keras' "sum_over_batch_size": each sample's values times its weight, summed, over how many there are."""
    if sample_weight is not None:
        values = values * sample_weight.reshape(-1, *[1] * (values.ndim - 1))
    return float(values.sum() / values.size)


def test_every_loss_has_a_reference():
    assert_same_names(LOSSES, LOSS_REFERENCES, "losses")
    aliases = set(LOSSES.names(with_aliases=True)) - set(LOSSES)
    assert aliases == set(LOSS_ALIASES)
    for alias, name in LOSS_ALIASES.items():
        assert LOSSES.canonical(alias) == name and LOSSES[alias] is LOSSES[name]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("name,options,shape", loss_cases())
def test_loss_matches_its_reference(name, options, shape, weighted):
    rng = np.random.default_rng(2)
    loss = loss_of(name, **options)
    pred, true = loss_data(loss, shape, rng)
    weights = rng.uniform(0, 2, size=shape[0]) if weighted else None
    reference = LOSS_REFERENCES[loss.type]
    for dtype, rel in ((np.float64, 1e-10), (np.float32, 1e-5)):  # float32 clips at float32's 1 - 1e-7
        p = pred.astype(dtype)
        expected = keras_reduction(reference(p.astype(np.float64) if dtype == np.float64 else p, true, **options),
                                   weights)
        assert loss(p, true, weights)[0] == pytest.approx(expected, rel=rel, abs=1e-12), dtype.__name__


@pytest.mark.parametrize("name,options,shape", loss_cases())
def test_loss_gradient_is_finite_differences(name, options, shape):
    """float64; where the loss is smooth (probabilities inside Keras' clipping, logits as large as they come)."""
    rng = np.random.default_rng(7)
    loss = loss_of(name, **options)
    pred, true = loss_data(loss, shape, rng, safe=True)
    weights = rng.uniform(0.5, 2, size=shape[0])
    _, grad = loss(pred, true, weights)
    picks, expected = numeric_gradient(lambda: loss(pred, true, weights)[0], pred)
    np.testing.assert_allclose(grad.reshape(-1)[picks], expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", ["binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
                                  "categorical_focal_crossentropy", "sparse_categorical_crossentropy"])
def test_logits_of_large_magnitude_stay_finite(name):
    """float32 logits of ±1e4 and ±1e30: the loss and its gradient are finite (log-sum-exp, no exp overflow)."""
    loss = loss_of(name, from_logits=True)
    pred = np.array([[1e4, -1e4, 3.0], [-1e30, 1e30, 0.0]], np.float32)
    true = np.array([[1, 0, 0], [1, 0, 0]], np.float32) if loss.targets != "labels" else np.array([0, 0])
    value, grad = loss(pred, true)
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value > 1e3 or name.endswith("focal_crossentropy")  # a sure wrong answer costs its logit gap


def _keras_loss(keras, name: str, options: dict):
    loss_type = LOSSES[name].model_fields["type"].annotation.__args__[0]
    class_name = keras.losses.get(loss_type).__name__ if loss_type in ("mse", "mae") else loss_type
    return keras_class_of(keras.losses, class_name)(**options)  # reduces as compile() does


@pytest.mark.parametrize("name,options,shape", loss_cases())
def test_loss_reference_is_keras(name, options, shape, keras):
    """The references above are Keras' losses: the Keras class of the same name and arguments, reduced by
    Keras, says the same, with and without sample weights."""
    rng = np.random.default_rng(3)
    loss = loss_of(name, **options)
    pred, true = loss_data(loss, shape, rng)
    pred = pred.astype(np.float32)  # as Keras computes: float32 clips at float32's 1 - 1e-7
    weights = rng.uniform(0, 2, size=shape[0])
    reference = LOSS_REFERENCES[loss.type]
    keras_loss = _keras_loss(keras, name, options)
    positions = shape[:-1] if "axis" not in options else (shape[0], shape[2])
    # Keras weighs each value of the loss by its own weight: the sample's, repeated over its positions
    weights_per_value = np.broadcast_to(weights.reshape(-1, *[1] * (len(positions) - 1)), positions)
    for sample_weight, keras_weight in ((None, None), (weights, weights_per_value)):
        theirs = float(keras_loss(true, pred, sample_weight=keras_weight))
        assert keras_reduction(reference(pred, true, **options), sample_weight) == pytest.approx(theirs, rel=1e-5)


@pytest.mark.parametrize("name,options,shape", loss_cases(shapes=((4, 2, 3),)))
def test_loss_gradient_is_keras(name, options, shape, keras):
    """Keras' own gradient (its backend's autodiff, float32) where the loss is smooth: the same numbers."""
    if keras.backend.backend() != "jax":
        pytest.skip("the gradient of a Keras loss is taken with JAX")
    import jax
    rng = np.random.default_rng(5)
    loss = loss_of(name, **options)
    pred, true = loss_data(loss, shape, rng, safe=True)
    pred = pred.astype(np.float32)
    keras_loss = _keras_loss(keras, name, options)
    theirs = np.asarray(jax.grad(lambda p: keras_loss(true, p))(pred))
    np.testing.assert_allclose(loss(pred, true)[1], theirs, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_arguments_are_keras(name, keras):
    """Each argument is the Keras class's, with its default; the class is the one Keras' name gives."""
    keras_class = type(_keras_loss(keras, name, {}))
    assert keras_class.__name__ == LOSSES[name].__name__
    assert_keras_arguments(LOSSES[name], keras_class, skip={"type"})


def test_hinge_turns_binary_labels_into_signs_only_when_all_are_0_or_1():
    pred = np.array([[0.3, -0.2]])
    assert loss_of("hinge")(pred, np.array([[1.0, 0.0]]))[0] == pytest.approx((0.7 + 0.8) / 2)
    assert loss_of("hinge")(pred, np.array([[1.0, 0.5]]))[0] == pytest.approx((0.7 + 1.1) / 2)


# -- metrics ----------------------------------------------------------------------------------------------

def epoch_value(metric, loss_name: str, shape: tuple, batches) -> float:
    """specc's epoch value: one accumulator fed every batch."""
    accumulator = metric.for_output(loss_of(loss_name), shape).start()
    for pred, true in batches:
        accumulator.update(pred, true)
    return accumulator.result()


def keras_epoch_value(keras, keras_metric, batches) -> float:
    for pred, true in batches:
        keras_metric.update_state(true, pred)
    result = keras.ops.convert_to_numpy(keras_metric.result())
    assert result.size == 1, "a history column is one number"
    return float(result.reshape(-1)[0])


def binary_accuracy(pred, true):
    """Keras thresholds the predictions at 0.5 and compares the targets as they are."""
    return float(np.mean(true == (pred > 0.5)))


def categorical_accuracy(pred, true):
    return float(np.mean(pred.argmax(-1) == true.argmax(-1)))


def sparse_categorical_accuracy(pred, labels):
    return float(np.mean(pred.argmax(-1) == labels))


def keras_accuracy(pred, true):
    """"accuracy" as Keras' compile resolves it (trainers/compile_utils.py), from the shapes of predictions
    and targets: one unit is binary; targets with fewer axes are class ids; else categorical."""
    if pred.shape[-1] == 1:
        return binary_accuracy(pred, true.reshape(pred.shape))
    if true.ndim < pred.ndim or true.shape[-1] == 1:
        return sparse_categorical_accuracy(pred, true.reshape(pred.shape[:-1]))
    return categorical_accuracy(pred, true)


ACCURACY_SHAPES = [(1,), (3,), (2, 3)]
# Where specc's "accuracy" is not the variant Keras 3 picks: specc chooses by the loss's targets first, then
# the output's last axis; Keras 3 by the shapes of predictions and targets alone.
ACCURACY_DIFFERENCES = {
    ("binary_crossentropy", (3,)): "Keras 3 picks categorical_accuracy for several sigmoid units; specc binary",
    ("binary_crossentropy", (2, 3)): "Keras 3 picks categorical_accuracy for several sigmoid units; specc binary",
    ("sparse_categorical_crossentropy", (1,)): "Keras 3 picks binary_accuracy for one unit; specc sparse",
}


def accuracy_data(kind: str, shape: tuple, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets of a batch of 20 for an output of `shape` whose loss reads this kind.
    Accuracy on a regression output means 0/1 targets."""
    shape = (20, *shape)
    if kind == "values":
        return rng.uniform(size=shape), rng.integers(0, 2, size=shape).astype(float)
    if kind == "binary":
        return rng.uniform(size=shape), rng.integers(0, 2, size=shape).astype(float)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    pred = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    return pred, (labels if kind == "labels" else np.eye(shape[-1])[labels])


def accuracy_cases():
    cases = []
    for name in ("accuracy", "acc"):
        for loss_name in ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
                          "mse"):
            for shape in ACCURACY_SHAPES:
                known = (loss_name, shape) in ACCURACY_DIFFERENCES
                marks = [pytest.mark.xfail(reason=ACCURACY_DIFFERENCES[loss_name, shape], strict=True)] if known else []
                cases.append(pytest.param(name, loss_name, shape, marks=marks, id=f"{name}-{loss_name}-{shape}"))
    return cases


@pytest.mark.parametrize("name,loss_name,shape", accuracy_cases())
def test_accuracy_is_the_variant_keras_picks(name, loss_name, shape):
    rng = np.random.default_rng(4)
    batches = [accuracy_data(LOSSES[loss_name].targets, shape, rng) for _ in range(3)]
    expected = np.mean([keras_accuracy(p, t) for p, t in batches])  # batches of one size: the mean of means
    assert epoch_value(metric_of(name), loss_name, shape, batches) == pytest.approx(expected, rel=1e-12)


def test_binary_accuracy_compares_soft_targets_as_they_are():
    rng = np.random.default_rng(5)
    pred, true = rng.uniform(size=(20, 3)), rng.uniform(size=(20, 3))
    true[:5] = 1.0
    assert epoch_value(metric_of("binary_accuracy"), "binary_crossentropy", (3,), [(pred, true)]) == pytest.approx(
        binary_accuracy(pred, true))


@dataclass
class MetricCase:
    """A metric (bare name or with arguments) on an output of `shape` whose loss is `loss`, over batches of
    `data(rng, rows)`; `keras` is its Keras class name and arguments (default: the same arguments)."""
    name: str
    options: dict = field(default_factory=dict)
    loss: str = "binary_crossentropy"
    shape: tuple = (3,)
    keras: Optional[tuple[str, dict]] = None
    data: Optional[Callable] = None
    id: str = ""


def probabilities(shape):
    def data(rng, rows):
        return rng.uniform(size=(rows, *shape)), rng.integers(0, 2, size=(rows, *shape)).astype(float)
    return data


def distributions(shape, sparse=False):
    def data(rng, rows):
        labels = rng.integers(0, shape[-1], size=(rows, *shape[:-1]))
        pred = rng.dirichlet(np.ones(shape[-1]), size=(rows, *shape[:-1]))
        return pred, labels if sparse else np.eye(shape[-1])[labels]
    return data


def regression(shape, positive=False):
    def data(rng, rows):
        if positive:
            return rng.uniform(0, 3, size=(rows, *shape)), rng.uniform(0, 3, size=(rows, *shape))
        true = rng.normal(size=(rows, *shape))
        return true + rng.normal(scale=0.5, size=true.shape), true
    return data


def all_negative(shape):
    def data(rng, rows):
        return rng.uniform(size=(rows, *shape)), np.zeros((rows, *shape))
    return data


def all_positive(shape):
    def data(rng, rows):
        return rng.uniform(size=(rows, *shape)), np.ones((rows, *shape))
    return data


def below_threshold(shape):
    """No prediction above 0.5: precision has nothing to count."""
    def data(rng, rows):
        return rng.uniform(0, 0.5, size=(rows, *shape)), rng.integers(0, 2, size=(rows, *shape)).astype(float)
    return data


def large_logits(shape):
    def data(rng, rows):
        return rng.normal(scale=30, size=(rows, *shape)), rng.integers(0, 2, size=(rows, *shape)).astype(float)
    return data


def class_ids(classes, shape=(3,)):
    """Predictions of class ids as Keras' IoU reads them by default (sparse_y_pred), and target ids."""
    def data(rng, rows):
        return (rng.integers(0, classes, size=(rows, *shape)).astype(float),
                rng.integers(0, classes, size=(rows, *shape)))
    return data


ONE_HOT = "categorical_crossentropy"
SPARSE = "sparse_categorical_crossentropy"
METRIC_CASES = [
    MetricCase("binary_accuracy", data=probabilities((3,))),
    MetricCase("binary_accuracy", {"threshold": 0.7}, data=probabilities((3,))),
    MetricCase("categorical_accuracy", loss=ONE_HOT, data=distributions((4,))),
    MetricCase("categorical_accuracy", loss=ONE_HOT, shape=(2, 4), data=distributions((2, 4))),
    MetricCase("sparse_categorical_accuracy", loss=SPARSE, data=distributions((4,), sparse=True)),
    MetricCase("top_k_categorical_accuracy", {"k": 2}, loss=ONE_HOT, shape=(5,), data=distributions((5,))),
    MetricCase("top_k_categorical_accuracy", loss=ONE_HOT, shape=(7,), data=distributions((7,))),
    MetricCase("sparse_top_k_categorical_accuracy", {"k": 2}, loss=SPARSE, shape=(5,),
               data=distributions((5,), sparse=True)),
    MetricCase("sparse_top_k_categorical_accuracy", {"k": 3}, loss=SPARSE, shape=(2, 5),
               data=distributions((2, 5), sparse=True)),
    MetricCase("mse", loss="mse", data=regression((3,))),
    MetricCase("mean_squared_error", loss="mse", data=regression((3,))),
    MetricCase("mae", loss="mse", data=regression((3,))),
    MetricCase("mean_absolute_error", loss="mse", data=regression((3,))),
    MetricCase("mape", loss="mse", data=regression((3,))),
    MetricCase("mean_absolute_percentage_error", loss="mse", data=regression((3,))),
    MetricCase("msle", loss="mse", data=regression((3,), positive=True)),
    MetricCase("mean_squared_logarithmic_error", loss="mse", data=regression((3,), positive=True)),
    MetricCase("root_mean_squared_error", loss="mse", data=regression((3,))),
    MetricCase("root_mean_squared_error", loss="mse", shape=(2, 3), data=regression((2, 3))),
    MetricCase("r2_score", loss="mse", data=regression((3,))),
    MetricCase("r2_score", {"class_aggregation": "variance_weighted_average"}, loss="mse", data=regression((3,))),
    MetricCase("r2_score", {"num_regressors": 2}, loss="mse", data=regression((3,))),
    MetricCase("r2_score", {"class_aggregation": None}, loss="mse", shape=(1,), data=regression((1,))),
    MetricCase("true_positives", data=probabilities((3,))),
    MetricCase("false_positives", {"thresholds": 0.3}, data=probabilities((3,))),
    MetricCase("true_negatives", data=probabilities((2, 3))),
    MetricCase("false_negatives", {"thresholds": 0.8}, data=probabilities((3,))),
    MetricCase("precision", data=probabilities((3,))),
    MetricCase("precision", {"thresholds": 0.7}, data=probabilities((2, 3))),
    MetricCase("precision", {"top_k": 2}, loss=ONE_HOT, shape=(4,), data=distributions((4,))),
    MetricCase("precision", {"class_id": 1}, data=probabilities((3,))),
    MetricCase("precision", {"top_k": 1, "class_id": 2}, loss=ONE_HOT, shape=(4,), data=distributions((4,))),
    MetricCase("precision", data=below_threshold((3,)), id="no_predicted_positives"),
    MetricCase("recall", data=probabilities((3,))),
    MetricCase("recall", {"thresholds": 0.2, "class_id": 0}, data=probabilities((3,))),
    MetricCase("recall", {"top_k": 2}, loss=ONE_HOT, shape=(4,), data=distributions((4,))),
    MetricCase("recall", data=all_negative((3,)), id="no_positives"),
    MetricCase("auc", data=probabilities((3,))),
    MetricCase("auc", data=probabilities((2, 3)), id="3d"),
    MetricCase("auc", {"curve": "PR"}, data=probabilities((3,))),
    MetricCase("auc", {"num_thresholds": 7}, data=probabilities((3,))),
    MetricCase("auc", {"curve": "PR", "num_thresholds": 11}, data=probabilities((3,))),
    MetricCase("auc", {"summation_method": "minoring"}, data=probabilities((3,))),
    MetricCase("auc", {"curve": "PR", "summation_method": "majoring"}, data=probabilities((3,))),
    MetricCase("auc", {"multi_label": True}, data=probabilities((3,))),
    MetricCase("auc", {"multi_label": True, "num_labels": 3, "curve": "PR"}, data=probabilities((3,))),
    MetricCase("auc", {"from_logits": True}, data=large_logits((3,)), id="large_logits"),
    MetricCase("auc", data=all_negative((3,)), id="all_negative"),
    MetricCase("auc", data=all_positive((3,)), id="all_positive"),
    MetricCase("auc", {"curve": "PR"}, data=all_negative((3,)), id="pr_all_negative"),
    MetricCase("auc", loss=SPARSE, shape=(1,), data=probabilities((1,)), id="one_unit"),
    MetricCase("f1_score", {"average": "macro"}, loss=ONE_HOT, shape=(4,), data=distributions((4,))),
    MetricCase("f1_score", {"average": "micro", "threshold": 0.3}, data=probabilities((3,))),
    MetricCase("f1_score", {"average": "weighted"}, loss=ONE_HOT, shape=(4,), data=distributions((4,))),
    MetricCase("fbeta_score", {"average": "macro", "beta": 2.0, "threshold": 0.5}, data=probabilities((3,))),
    MetricCase("fbeta_score", {"average": "micro", "beta": 0.5}, loss=ONE_HOT, shape=(4,), data=distributions((4,))),
    MetricCase("iou", {"num_classes": 3, "target_class_ids": [0, 2]}, loss="mse", data=class_ids(3)),
    MetricCase("iou", {"num_classes": 4, "target_class_ids": [1], "sparse_y_pred": False}, loss=SPARSE, shape=(4,),
               data=distributions((4,), sparse=True)),
    MetricCase("mean_iou", {"num_classes": 3}, loss="mse", data=class_ids(3)),
    MetricCase("mean_iou", {"num_classes": 3, "ignore_class": 0}, loss="mse", data=class_ids(3)),
    MetricCase("mean_iou", {"num_classes": 4, "sparse_y_true": False, "sparse_y_pred": False}, loss=ONE_HOT,
               shape=(2, 4), data=distributions((2, 4))),
]
KERAS_METRICS = {  # Keras' class of each metric
    "binary_accuracy": "BinaryAccuracy", "categorical_accuracy": "CategoricalAccuracy",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy", "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "sparse_top_k_categorical_accuracy": "SparseTopKCategoricalAccuracy", "mse": "MeanSquaredError",
    "mae": "MeanAbsoluteError", "mape": "MeanAbsolutePercentageError", "msle": "MeanSquaredLogarithmicError",
    "root_mean_squared_error": "RootMeanSquaredError", "r2_score": "R2Score", "true_positives": "TruePositives",
    "false_positives": "FalsePositives", "true_negatives": "TrueNegatives", "false_negatives": "FalseNegatives",
    "precision": "Precision", "recall": "Recall", "auc": "AUC", "f1_score": "F1Score", "fbeta_score": "FBetaScore",
    "iou": "IoU", "mean_iou": "MeanIoU",
}
METRIC_ALIASES = {"acc": "accuracy", "mean_squared_error": "mse", "mean_absolute_error": "mae",
                  "mean_absolute_percentage_error": "mape", "mean_squared_logarithmic_error": "msle"}


def test_every_metric_has_a_case_and_a_keras_class():
    assert_same_names(METRICS, {**KERAS_METRICS, "accuracy": None}, "metrics")
    assert {METRICS.canonical(case.name) for case in METRIC_CASES} | {"accuracy"} == set(METRICS)
    assert set(METRICS.names(with_aliases=True)) - set(METRICS) == set(METRIC_ALIASES)
    for alias, name in METRIC_ALIASES.items():
        assert METRICS.canonical(alias) == name


@pytest.mark.parametrize("name", [n for n in METRICS if n != "accuracy"])
def test_metric_arguments_are_keras(name, keras):
    """Each argument is the Keras class's, with its default (`name` too: specc's default is the type)."""
    keras_class = getattr(keras.metrics, KERAS_METRICS[name])
    assert keras_class.__name__ == METRICS[name].__name__
    assert_keras_arguments(METRICS[name], keras_class, skip={"type", "name"})


@pytest.mark.parametrize("case", METRIC_CASES, ids=lambda c: c.name + (f"[{c.id}]" if c.id else "") +
                         "".join(f"-{k}={v}" for k, v in c.options.items()))
def test_metric_over_an_epoch_is_keras(case, keras):
    """Several batches of unequal size: Keras' update_state on each, then result(); specc's epoch value."""
    rng = np.random.default_rng(11)
    batches = [tuple(a.astype(np.float32) if a.dtype == np.float64 else a for a in case.data(rng, rows))
               for rows in (16, 16, 7)]
    ours = epoch_value(metric_of(case.name, **case.options), case.loss, case.shape, batches)
    keras_name = KERAS_METRICS[METRICS.canonical(case.name)]
    theirs = keras_epoch_value(keras, getattr(keras.metrics, keras_name)(**case.options), batches)
    assert ours == pytest.approx(theirs, rel=2e-5, abs=2e-6)


def test_mean_metric_is_the_mean_of_every_value_not_of_batch_means():
    """Batches of 3 and 1 rows: the epoch's mse weighs each value once."""
    batches = [(np.zeros((3, 1)), np.ones((3, 1))), (np.zeros((1, 1)), np.full((1, 1), 3.0))]
    assert epoch_value(metric_of("mse"), "mse", (1,), batches) == pytest.approx((3 * 1 + 9) / 4)
    assert epoch_value(metric_of("root_mean_squared_error"), "mse", (1,), batches) == pytest.approx(np.sqrt(3))


def test_auc_is_the_area_under_the_bucketed_roc_curve():
    """Perfectly separated scores give 1 whatever the buckets; reversed ones 0; one bucket for all: 0.5."""
    true = np.array([[0.0], [0.0], [1.0], [1.0]])
    auc = metric_of("auc")
    assert epoch_value(auc, "binary_crossentropy", (1,), [(np.array([[0.1], [0.2], [0.8], [0.9]]), true)]) == 1
    assert epoch_value(auc, "binary_crossentropy", (1,), [(np.array([[0.9], [0.8], [0.2], [0.1]]), true)]) == 0
    assert epoch_value(auc, "binary_crossentropy", (1,), [(np.full((4, 1), 0.5), true)]) == pytest.approx(0.5)


def test_precision_counts_only_predictions_above_the_threshold():
    pred = np.array([[0.9, 0.6, 0.4, 0.7]])
    true = np.array([[1.0, 0.0, 1.0, 1.0]])
    assert epoch_value(metric_of("precision"), "binary_crossentropy", (4,), [(pred, true)]) == pytest.approx(2 / 3)
    assert epoch_value(metric_of("recall"), "binary_crossentropy", (4,), [(pred, true)]) == pytest.approx(2 / 3)
    assert epoch_value(metric_of("precision", thresholds=0.8), "binary_crossentropy", (4,), [(pred, true)]) == 1


# -- in a run: history columns, monitoring, resuming mid-epoch ------------------------------------------------

SPEC = """\
specc: 1
name: m
inputs: {{x: {{shape: [4]}}}}
layers:
  h: {{type: Dense, units: 3, activation: sigmoid, inputs: x}}
outputs: h
compile:
  loss: {loss}
  metrics: {metrics}
{rest}"""


def write_spec(tmp_path: Path, loss="binary_crossentropy", metrics="[]", rest="") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(loss=loss, metrics=metrics, rest=rest))
    return path


@pytest.mark.parametrize("loss", ["binary_crossentropy", "BinaryCrossentropy", "bce", "{type: BCE}",
                                  "{type: binary_crossentropy, from_logits: true, label_smoothing: 0.1}",
                                  "{h: {type: BinaryFocalCrossentropy, gamma: 1.0}}", "{h: squared_hinge}"])
def test_a_loss_is_a_name_or_its_arguments(tmp_path, loss):
    model = Model(write_spec(tmp_path, loss=loss))
    spec_loss = model.spec.compile.loss_of("h")
    assert spec_loss.type in LOSSES
    if "from_logits" in loss:
        assert spec_loss.from_logits and spec_loss.label_smoothing == 0.1


@pytest.mark.parametrize("loss,message", [
    ("binary_crossentropie", "unknown loss 'binary_crossentropie' (did you mean 'binary_crossentropy'?)"),
    ("{type: huber, delta: -1}", "greater than 0"),
    ("{type: huber, detla: 2}", "unknown key 'detla' (did you mean 'delta'?)"),
    ("{type: categorical_crossentropy, axis: 2}", "axis 2 is not an axis of output 'h'"),
    ("{type: sparse_categorical_crossentropy, ignore_class: 3}", "ignore_class 3 is not a class of output 'h'"),
])
def test_loss_errors_are_located(tmp_path, loss, message):
    result = run("validate", write_spec(tmp_path, loss=loss))
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("metrics,message", [
    ("[{type: auc, curve: pr}]", "'pr' is not one of"),
    ("[auc, {type: AUC, curve: PR}]", "two metrics of output 'h' log 'auc'; give one a `name:`"),
    ("[f1_score]", "average: null (the default) gives one score per unit"),
    ("[{type: auc, name: 'pr auc'}]", "is not a valid metric name"),
    ("[{type: precision, class_id: 3}]", "class_id 3 is not a class of an output of 3"),
    ("[{type: iou, num_classes: 2, target_class_ids: [2]}]", "target_class_ids [2] are not among the 2 classes"),
    ("[aucc]", "unknown metric 'aucc' (did you mean 'auc'?)"),
])
def test_metric_errors_are_located(tmp_path, metrics, message):
    result = run("validate", write_spec(tmp_path, metrics=metrics))
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_named_metrics_are_history_columns_that_callbacks_monitor(tmp_path):
    rest = ("fit:\n  callbacks: [{type: early_stopping, monitor: val_pr_auc}, "
            "{type: model_checkpoint, filepath: 'best.npz', monitor: val_precision, save_best_only: true}]\n")
    metrics = "[{type: AUC, name: pr_auc, curve: PR}, Precision, RootMeanSquaredError, acc]"
    assert run("validate", write_spec(tmp_path, metrics=metrics, rest=rest)).returncode == 0
    model = Model(tmp_path / "spec.yaml")
    objective = Objective.from_compile(model.spec.compile, model.graph)
    assert list(objective.metrics["h"]) == ["pr_auc", "precision", "root_mean_squared_error", "accuracy"]
    # Keras' `auto` mode follows the metric: AUC and precision go up, errors and losses down
    assert [objective.upwards(n) for n in ("val_pr_auc", "precision", "root_mean_squared_error", "val_loss",
                                           "accuracy", "nothing")] == [True, True, False, False, True, None]
    result = run("validate", write_spec(tmp_path, metrics=metrics, rest=rest.replace("val_pr_auc", "val_auc")))
    assert "monitors 'val_auc', which the run does not log (did you mean 'val_pr_auc'?)" in result.stderr


def test_resuming_mid_epoch_keeps_every_metric_exact(tmp_path):
    """An epoch in one go, and the same epoch stopped after two batches, its state through JSON (as the
    checkpoint keeps it) restored into fresh logs: the same numbers, to the last bit."""
    from specc.train.loop import RunningLogs
    metrics = ("[acc, auc, {type: auc, name: pr_auc, curve: PR, multi_label: true}, precision, "
               "root_mean_squared_error, r2_score, {type: f1_score, average: macro}, "
               "{type: mean_iou, num_classes: 3, sparse_y_true: false, sparse_y_pred: false}]")
    model = Model(write_spec(tmp_path, metrics=metrics))
    objective = Objective.from_compile(model.spec.compile, model.graph)
    rng = np.random.default_rng(0)
    batches = [(rng.uniform(size=(n, 3)).astype(np.float32), rng.integers(0, 2, size=(n, 3)).astype(np.float32))
               for n in (8, 8, 8, 5)]

    def feed(logs, part):
        for pred, true in part:
            logs.add(float(np.mean(pred)), {}, {"h": pred}, {"h": true}, len(pred))

    whole = RunningLogs(model.graph, objective)
    feed(whole, batches)
    first = RunningLogs(model.graph, objective)
    feed(first, batches[:2])
    resumed = RunningLogs(model.graph, objective)
    resumed.restore(json.loads(json.dumps(first.state())))
    feed(resumed, batches[2:])
    assert resumed.means() == whole.means()
    assert set(whole.means()) == {"loss", "accuracy", "auc", "pr_auc", "precision", "root_mean_squared_error",
                                  "r2_score", "f1_score", "mean_iou"}


def test_a_run_resumed_mid_epoch_logs_what_an_uninterrupted_one_does(tmp_path):
    """Through the checkpoint file: interrupted after 3 batches of the second epoch, then resumed."""
    from specc.train.checkpoint import load_checkpoint
    from specc.train.loop import FitConfig, fit
    from specc.train.run import RunFolder
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(40, 4)).astype(np.float32),
             h=rng.integers(0, 2, size=(40, 3)).astype(np.float32))
    metrics = "[auc, {type: auc, name: pr, curve: PR}, recall, r2_score]"
    path = write_spec(tmp_path, metrics=metrics, rest="data: {train: d.npz}\n")

    def train(stop_after: Optional[int], state=None):
        model = Model(path)
        train_data, _ = model.spec_data()
        if state is not None:
            model.params.assign(state.weights, "checkpoint")
            state.restore_optimizer(model.optimizer)
        calls = iter(range(10 ** 6))
        stop = (lambda: next(calls) == stop_after) if stop_after is not None else None
        folder = tmp_path / f"run{stop_after}"
        folder.mkdir(exist_ok=True)
        config = FitConfig(2, 8, True, 0, [], None, stop, RunFolder(folder).files())
        return fit(model.graph, model.params, model.optimizer, model._objective(), train_data, None, config,
                   state.state if state is not None else None)

    whole = train(None)
    train(7)  # stops after batch 3 of epoch 2 (5 batches an epoch)
    resumed = train(None, load_checkpoint(tmp_path / "run7" / "checkpoint.npz"))
    assert resumed == whole
