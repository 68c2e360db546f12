"""Every loss and metric name against Keras' definition written out in numpy, and that reference against
Keras itself (when installed); the tables must list exactly the registries' names."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pytest

from specc.train.losses import LOSSES
from specc.train.metrics import METRICS
from support import assert_same_names, keras_class_of

EPSILON = 1e-7  # keras.config.epsilon(): how far from 0 and 1 Keras clips probabilities in its losses


# -- losses -----------------------------------------------------------------------------------------------
# Keras' loss functions: one value per sample position (the last axis reduced), as keras.losses defines them.

def binary_crossentropy(pred, true):
    p = np.clip(pred, EPSILON, 1 - EPSILON)
    return np.mean(-(true * np.log(p) + (1 - true) * np.log(1 - p)), axis=-1)


def categorical_crossentropy(pred, true):
    p = np.clip(pred / pred.sum(-1, keepdims=True), EPSILON, 1 - EPSILON)
    return -np.sum(true * np.log(p), axis=-1)


def sparse_categorical_crossentropy(pred, labels):
    return categorical_crossentropy(pred, np.eye(pred.shape[-1])[labels])


def mean_squared_error(pred, true):
    return np.mean((pred - true) ** 2, axis=-1)


def mean_absolute_error(pred, true):
    return np.mean(np.abs(pred - true), axis=-1)


LOSS_REFERENCES = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mse": mean_squared_error,
    "mae": mean_absolute_error,
}
LOSS_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae"}


def keras_reduction(values: np.ndarray, sample_weight: Optional[np.ndarray]) -> float:
    """Keras' "sum_over_batch_size": each sample's values times its weight, summed, over how many there are."""
    if sample_weight is not None:
        values = values * sample_weight.reshape(-1, *[1] * (values.ndim - 1))
    return float(values.sum() / values.size)


def loss_data(kind: str, shape: tuple, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets of a batch for a loss of this target kind, with probabilities that Keras clips
    and (for class scores) rows that do not sum to 1, which Keras renormalizes."""
    if kind == "values":
        return rng.normal(size=shape), rng.normal(size=shape)
    if kind == "binary":
        pred = rng.uniform(size=shape)
        pred.reshape(-1)[:3] = [0.0, 1.0, 1e-9]
        return pred, rng.integers(0, 2, size=shape).astype(float)
    classes = shape[-1]
    pred = rng.dirichlet(np.ones(classes), size=shape[:-1]) * rng.uniform(0.5, 2, size=(*shape[:-1], 1))
    labels = rng.integers(0, classes, size=shape[:-1])
    rows, row_labels = pred.reshape(-1, classes), labels.reshape(-1)  # views
    if classes > 1:  # clipped below: a sure wrong answer; clipped above: a sure right one
        rows[0, row_labels[0]] = 1e-12
        rows[1] = 1e-12
        rows[1, row_labels[1]] = 1.5
    return pred, (labels if kind == "labels" else np.eye(classes)[labels])


LOSS_SHAPES = [(4, 3), (4, 2, 3)]


def test_every_loss_has_a_reference():
    assert_same_names(LOSSES, LOSS_REFERENCES, "losses")
    aliases = set(LOSSES.names(with_aliases=True)) - set(LOSSES)
    assert aliases == set(LOSS_ALIASES)
    for alias, name in LOSS_ALIASES.items():
        assert LOSSES.canonical(alias) == name and LOSSES[alias] is LOSSES[name]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("name", LOSSES.names(with_aliases=True))
def test_loss_matches_its_reference(name, shape, weighted):
    rng = np.random.default_rng(2)
    loss = LOSSES[name]
    pred, true = loss_data(loss.targets, shape, rng)
    weights = rng.uniform(0, 2, size=shape[0]) if weighted else None
    reference = LOSS_REFERENCES[LOSSES.canonical(name)]
    for dtype, rel in ((np.float64, 1e-10), (np.float32, 1e-5)):  # float32 clips at float32's 1 - 1e-7
        expected = keras_reduction(reference(pred.astype(dtype), true), weights)
        assert loss(pred.astype(dtype), true, weights)[0] == pytest.approx(expected, rel=rel), dtype.__name__


@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("name", LOSSES.names(with_aliases=True))
def test_loss_reference_is_keras(name, shape, keras):
    """The references above are Keras' losses: keras.losses.get(name), reduced by Keras, say the same."""
    rng = np.random.default_rng(3)
    pred, true = loss_data(LOSSES[name].targets, shape, rng)
    pred = pred.astype(np.float32)  # as Keras computes: float32 clips at float32's 1 - 1e-7
    weights = rng.uniform(0, 2, size=shape[0])
    reference = LOSS_REFERENCES[LOSSES.canonical(name)]
    keras_loss = keras_class_of(keras.losses, keras.losses.get(name).__name__)()  # reduces as compile() does
    # Keras weighs each value of the loss by its own weight: the sample's, repeated over its positions
    weights_per_value = np.broadcast_to(weights.reshape(-1, *[1] * (len(shape) - 2)), shape[:-1])
    for sample_weight, keras_weight in ((None, None), (weights, weights_per_value)):
        theirs = float(keras_loss(true, pred, sample_weight=keras_weight))
        assert keras_reduction(reference(pred, true), sample_weight) == pytest.approx(theirs, rel=1e-5)


# -- metrics ----------------------------------------------------------------------------------------------
# Keras' metric functions, reduced as Keras' mean metrics are: over every value.

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


@dataclass(frozen=True)
class MetricReference:
    formula: Callable
    targets: tuple[str, ...]  # the target kinds (of the output's loss) it is checked with


ALL_KINDS = ("labels", "one_hot", "binary", "values")
METRIC_REFERENCES = {
    "accuracy": MetricReference(keras_accuracy, ALL_KINDS),
    "binary_accuracy": MetricReference(binary_accuracy, ("binary",)),
    "categorical_accuracy": MetricReference(categorical_accuracy, ("one_hot",)),
    "sparse_categorical_accuracy": MetricReference(sparse_categorical_accuracy, ("labels",)),
    "mse": MetricReference(lambda p, t: float(np.mean((p - t) ** 2)), ("values", "binary", "one_hot")),
    "mae": MetricReference(lambda p, t: float(np.mean(np.abs(p - t))), ("values", "binary", "one_hot")),
}
METRIC_ALIASES = {"acc": "accuracy"}
METRIC_SHAPES = [(1,), (3,), (2, 3)]

# Where specc's "accuracy" is not the variant Keras 3 picks: specc chooses by the loss's targets first, then
# the output's last axis; Keras 3 by the shapes of predictions and targets alone.
ACCURACY_DIFFERENCES = {
    ("binary_crossentropy", (3,)): "Keras 3 picks categorical_accuracy for several sigmoid units; specc binary",
    ("binary_crossentropy", (2, 3)): "Keras 3 picks categorical_accuracy for several sigmoid units; specc binary",
    ("sparse_categorical_crossentropy", (1,)): "Keras 3 picks binary_accuracy for one unit; specc sparse",
}


def metric_data(kind: str, shape: tuple, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets of a batch of 20 for an output of `shape` whose loss reads this kind.
    Accuracy on a regression output means 0/1 targets (real ones: test_binary_accuracy_with_soft_targets)."""
    shape = (20, *shape)
    if kind == "values":
        return rng.uniform(size=shape), rng.integers(0, 2, size=shape).astype(float)
    return loss_data(kind, shape, rng)


def metric_cases():
    """Each metric name with each loss whose targets its reference reads, on each output shape."""
    cases = []
    for name in METRICS.names(with_aliases=True):
        reference = METRIC_REFERENCES.get(METRICS.canonical(name))
        losses = [loss for loss in LOSSES if reference and LOSSES[loss].targets in reference.targets]
        for loss_name in losses:
            for shape in METRIC_SHAPES:
                known = METRICS.canonical(name) == "accuracy" and (loss_name, shape) in ACCURACY_DIFFERENCES
                marks = [pytest.mark.xfail(reason=ACCURACY_DIFFERENCES[loss_name, shape], strict=True)] if known else []
                cases.append(pytest.param(name, loss_name, shape, marks=marks, id=f"{name}-{loss_name}-{shape}"))
    return cases


def test_every_metric_has_a_reference():
    assert_same_names(METRICS, METRIC_REFERENCES, "metrics")
    aliases = set(METRICS.names(with_aliases=True)) - set(METRICS)
    assert aliases == set(METRIC_ALIASES)
    for alias, name in METRIC_ALIASES.items():
        assert METRICS.canonical(alias) == name


@pytest.mark.parametrize("name,loss_name,shape", metric_cases())
def test_metric_matches_its_reference(name, loss_name, shape):
    rng = np.random.default_rng(4)
    loss = LOSSES[loss_name]
    pred, true = metric_data(loss.targets, shape, rng)
    metric = METRICS[name](loss, shape)
    expected = METRIC_REFERENCES[METRICS.canonical(name)].formula(pred, true)
    assert metric(pred, true) == pytest.approx(expected, rel=1e-12)


@pytest.mark.xfail(reason="specc thresholds the targets at 0.5 too; Keras compares them as they are", strict=True)
def test_binary_accuracy_with_soft_targets():
    rng = np.random.default_rng(5)
    pred, true = rng.uniform(size=(20, 3)), rng.uniform(size=(20, 3))
    metric = METRICS["binary_accuracy"](LOSSES["binary_crossentropy"], (3,))
    assert metric(pred, true) == pytest.approx(binary_accuracy(pred, true))


@pytest.mark.parametrize("name", [n for n in METRICS.names(with_aliases=True) if METRICS.canonical(n) != "accuracy"])
def test_metric_reference_is_keras(name, keras):
    """The references above are Keras' metrics: keras.metrics.get(name) says the same. ("accuracy" is no
    function in Keras: its compile picks one of the others, as keras_accuracy does.)"""
    reference = METRIC_REFERENCES[METRICS.canonical(name)]
    pred, true = metric_data(reference.targets[0], (2, 3), np.random.default_rng(6))
    theirs = float(np.mean(keras.ops.convert_to_numpy(keras.metrics.get(name)(true, pred))))
    assert reference.formula(pred, true) == pytest.approx(theirs, rel=1e-6)
