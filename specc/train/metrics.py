"""Metrics by Keras' names and arguments, with Keras' value over an epoch.

A metric is one settings class (an entry of the spec's `compile.metrics`: a bare name or `{type: NAME,
...arguments, name: COLUMN}`). As in Keras, a metric keeps totals over the batches of an epoch and its
value is computed from them: a mean metric (accuracy, mse...) sums its values and counts them, so its epoch
value is the mean over every value of the epoch; precision, recall, AUC, r2, F-scores, IoU and RMSE keep
counts or sums from which Keras computes them at the end. `accuracy` becomes the variant that fits the
output's loss. Metrics are unweighted, as Keras' `metrics` (not `weighted_metrics`) are.
"""
from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Optional

import numpy as np
from pydantic import AfterValidator, Field, NonNegativeInt, PositiveFloat, PositiveInt

from ..registry import Config, Registry
from .losses import LossSettings

Totals = dict[str, np.ndarray]
Threshold = Annotated[float, Field(ge=0, le=1)]
NEG_INF = -1e10  # Keras' threshold when only the top k predictions count
EPSILON = 1e-7  # keras.config.epsilon()


def _column(name: Optional[str]) -> Optional[str]:
    if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a valid metric name: it names a history column, so letters, digits "
                         "and '_', not starting with a digit")
    return name


class MetricSettings(Config):
    """A metric as the spec gives it. `increments` turns one batch into amounts added to the epoch's totals;
    `result` is the metric's value from the totals so far."""
    type: str  # each metric's own Literal: the `type:` that selects it
    name: Annotated[Optional[str], AfterValidator(_column)] = Field(
        None, description="Its history column (`val_` + it for validation); default: its type.")
    direction: ClassVar[Literal["up", "down"]] = "up"  # Keras' `_direction`: which way is better

    @property
    def column(self) -> str:
        return self.name or self.type

    def for_output(self, loss: LossSettings, output_shape: tuple) -> "MetricSettings":
        """The metric that computes this one for an output of this loss and shape (`accuracy` picks one)."""
        return self

    def problem(self, loss: LossSettings, output_shape: tuple) -> Optional[str]:
        """Why the metric cannot measure an output of this loss and shape, or None."""
        return None

    def increments(self, pred: np.ndarray, true: np.ndarray) -> Totals:
        raise NotImplementedError

    def result(self, totals: Totals) -> float:
        raise NotImplementedError

    def start(self) -> "Accumulator":
        return Accumulator(self)


class Accumulator:
    """One metric's totals over the batches of an epoch so far; `state()` is JSON, for checkpoints."""

    def __init__(self, metric: MetricSettings):
        self.metric = metric
        self.totals: Totals = {}

    def update(self, pred: np.ndarray, true: np.ndarray):
        for key, amount in self.metric.increments(pred, true).items():
            self.totals[key] = self.totals.get(key, 0.0) + np.asarray(amount, np.float64)

    def result(self) -> float:
        return float(self.metric.result(self.totals)) if self.totals else 0.0

    def state(self) -> dict:
        return {key: value.tolist() for key, value in self.totals.items()}

    def restore(self, state: dict):
        self.totals = {key: np.asarray(value, np.float64) for key, value in state.items()}


METRICS: Registry[type[MetricSettings]] = Registry("metric")


def _divide(a, b):
    """a / b, and 0 where b is 0 (Keras' divide_no_nan)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _same_shape(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Targets laid out as the predictions: as they are, or class ids as one-hot rows."""
    if true.size == pred.size:
        return true.reshape(pred.shape)
    return np.eye(pred.shape[-1], dtype=pred.dtype)[true.reshape(pred.shape[:-1])]


def _labels(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Targets as class ids of the predictions' rows: as they are, or the arg-max of one-hot rows."""
    return true.reshape(pred.shape[:-1]) if true.size * pred.shape[-1] == pred.size else true.argmax(-1)


# -- mean metrics: the mean of every value of the epoch ------------------------------------------------------

class MeanMetric(MetricSettings):
    """Keras' MeanMetricWrapper: `values` per batch, their sum and count kept."""

    def values(self, pred: np.ndarray, true: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def increments(self, pred, true):
        values = self.values(pred, true)
        return {"total": values.sum(dtype=np.float64), "count": values.size}

    def result(self, totals):
        return _divide(totals["total"], totals["count"])


@METRICS.register()
class BinaryAccuracy(MeanMetric):
    type: Literal["binary_accuracy"]
    threshold: float = 0.5

    def values(self, pred, true):
        return _same_shape(true, pred) == (pred > self.threshold)


@METRICS.register()
class CategoricalAccuracy(MeanMetric):
    type: Literal["categorical_accuracy"]

    def values(self, pred, true):
        return pred.argmax(-1) == _same_shape(true, pred).argmax(-1)


@METRICS.register()
class SparseCategoricalAccuracy(MeanMetric):
    type: Literal["sparse_categorical_accuracy"]

    def values(self, pred, true):
        return pred.argmax(-1) == _labels(true, pred)


@METRICS.register(aliases=("acc",))
class Accuracy(MetricSettings):
    """The accuracy that fits the output's loss: class ids, binary targets or one unit, else one-hot rows."""
    type: Literal["accuracy"]

    def for_output(self, loss, output_shape):
        if loss.targets == "labels":
            return SparseCategoricalAccuracy(type="sparse_categorical_accuracy", name=self.column)
        if loss.targets == "binary" or output_shape[-1] == 1:
            return BinaryAccuracy(type="binary_accuracy", name=self.column)
        return CategoricalAccuracy(type="categorical_accuracy", name=self.column)


def _rank_of_target(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 + how many predictions of each row are larger than the target's (Keras' in_top_k)."""
    rows = pred.reshape(-1, pred.shape[-1])
    at_label = np.take_along_axis(rows, labels.reshape(-1, 1), axis=-1)
    at_label = np.where(np.isnan(at_label), -np.inf, at_label)
    return 1 + (rows > at_label).sum(-1)


@METRICS.register()
class TopKCategoricalAccuracy(MeanMetric):
    type: Literal["top_k_categorical_accuracy"]
    k: PositiveInt = 5

    def values(self, pred, true):
        return _rank_of_target(pred, _same_shape(true, pred).argmax(-1)) <= self.k


@METRICS.register()
class SparseTopKCategoricalAccuracy(MeanMetric):
    type: Literal["sparse_top_k_categorical_accuracy"]
    k: PositiveInt = 5

    def values(self, pred, true):
        return _rank_of_target(pred, _labels(true, pred).astype(np.int64)) <= self.k


class _Error(MeanMetric):
    """A regression metric: Keras' function of (pred - true) per value, averaged."""
    direction = "down"

    def values(self, pred, true):
        return self.error(pred, _same_shape(true, pred).astype(pred.dtype, copy=False))

    def error(self, pred: np.ndarray, true: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _SquaredError(_Error):
    def error(self, pred, true):
        return (pred - true) ** 2


@METRICS.register(aliases=("mean_squared_error",))
class MeanSquaredError(_SquaredError):
    type: Literal["mse"]


@METRICS.register(aliases=("mean_absolute_error",))
class MeanAbsoluteError(_Error):
    type: Literal["mae"]

    def error(self, pred, true):
        return np.abs(pred - true)


@METRICS.register(aliases=("mean_absolute_percentage_error",))
class MeanAbsolutePercentageError(_Error):
    type: Literal["mape"]

    def error(self, pred, true):
        return 100.0 * np.abs((true - pred) / np.maximum(np.abs(true), EPSILON))


@METRICS.register(aliases=("mean_squared_logarithmic_error",))
class MeanSquaredLogarithmicError(_Error):
    type: Literal["msle"]

    def error(self, pred, true):
        return (np.log(np.maximum(pred, EPSILON) + 1.0) - np.log(np.maximum(true, EPSILON) + 1.0)) ** 2


@METRICS.register()
class RootMeanSquaredError(_SquaredError):
    """The square root of the epoch's mean squared error (not a mean of batch roots)."""
    type: Literal["root_mean_squared_error"]

    def result(self, totals):
        return np.sqrt(super().result(totals))


# -- confusion counts: precision, recall, AUC and the counts themselves --------------------------------------

def _counts_above(pred: np.ndarray, positive: np.ndarray, thresholds: np.ndarray) -> Totals:
    """tp, fp, tn, fn at each threshold: a prediction above a threshold says positive (Keras' confusion
    matrix update, per value of the flattened batch)."""
    above = pred.reshape(1, -1) > thresholds.reshape(-1, 1)
    positive = positive.reshape(1, -1)
    tp = (above & positive).sum(1)
    fp = (above & ~positive).sum(1)
    return {"tp": tp, "fp": fp, "fn": positive.sum() - tp, "tn": (~positive).sum() - fp}


class _Thresholded(MetricSettings):
    """Keras' counts at one threshold (`thresholds`, default 0.5), optionally of one class (`class_id`) or of
    the top k predictions of each row only (`top_k`)."""
    thresholds: Optional[Threshold] = None

    def counts(self, pred: np.ndarray, true: np.ndarray) -> Totals:
        true = _same_shape(true, pred)
        threshold = 0.5 if self.thresholds is None else self.thresholds
        # Precision and Recall take top_k and class_id; the counts themselves do not
        top_k, class_id = getattr(self, "top_k", None), getattr(self, "class_id", None)
        if top_k is not None:
            kept = np.zeros(pred.shape, bool)
            np.put_along_axis(kept, np.argsort(-pred, axis=-1, kind="stable")[..., :top_k], True, axis=-1)
            pred = np.where(kept, pred, NEG_INF)
            threshold = NEG_INF if self.thresholds is None else threshold
        if class_id is not None:
            pred, true = pred[..., class_id], true[..., class_id]
        return _counts_above(pred, true != 0, np.array([threshold], pred.dtype))

    def problem(self, loss, output_shape):
        class_id = getattr(self, "class_id", None)
        if class_id is not None and class_id >= output_shape[-1]:
            return f"class_id {class_id} is not a class of an output of {output_shape[-1]}"
        top_k = getattr(self, "top_k", None)
        if top_k is not None and top_k > output_shape[-1]:
            return f"top_k {top_k} is more than the output's {output_shape[-1]} values per row"
        return None


class _Count(_Thresholded):
    """One of the counts at the threshold, over the epoch."""
    key: ClassVar[str]  # tp, fp, tn or fn

    def increments(self, pred, true):
        return {self.key: self.counts(pred, true)[self.key]}

    def result(self, totals):
        return totals[self.key][0]


@METRICS.register()
class TruePositives(_Count):
    type: Literal["true_positives"]
    key = "tp"


@METRICS.register()
class FalsePositives(_Count):
    type: Literal["false_positives"]
    key = "fp"
    direction = "down"


@METRICS.register()
class TrueNegatives(_Count):
    type: Literal["true_negatives"]
    key = "tn"


@METRICS.register()
class FalseNegatives(_Count):
    type: Literal["false_negatives"]
    key = "fn"
    direction = "down"


@METRICS.register()
class Precision(_Thresholded):
    type: Literal["precision"]
    top_k: Optional[PositiveInt] = None
    class_id: Optional[NonNegativeInt] = None

    def increments(self, pred, true):
        counts = self.counts(pred, true)
        return {"tp": counts["tp"], "fp": counts["fp"]}

    def result(self, totals):
        return _divide(totals["tp"], totals["tp"] + totals["fp"])[0]


@METRICS.register()
class Recall(_Thresholded):
    type: Literal["recall"]
    top_k: Optional[PositiveInt] = None
    class_id: Optional[NonNegativeInt] = None

    def increments(self, pred, true):
        counts = self.counts(pred, true)
        return {"tp": counts["tp"], "fn": counts["fn"]}

    def result(self, totals):
        return _divide(totals["tp"], totals["tp"] + totals["fn"])[0]


@METRICS.register()
class AUC(MetricSettings):
    """Keras' AUC: counts at `num_thresholds` evenly spaced thresholds (0 - EPSILON, 1/(n-1), ..., 1 + EPSILON),
    each prediction counted in its bucket, ceil(p (n - 1)) - 1; the area by Keras' Riemann sum, and for
    `curve: PR` with interpolation by Keras' interpolation of precision (Davis & Goadrich), not average
    precision. `multi_label`: one curve per unit of the output, their areas averaged."""
    type: Literal["auc"]
    num_thresholds: Annotated[int, Field(gt=1)] = 200
    curve: Literal["ROC", "PR"] = "ROC"
    summation_method: Literal["interpolation", "minoring", "majoring"] = "interpolation"
    multi_label: bool = False
    num_labels: Optional[PositiveInt] = None
    from_logits: bool = False

    def problem(self, loss, output_shape):
        if self.multi_label and len(output_shape) != 1:
            return f"multi_label needs an output of one axis (rows, labels); this one is {output_shape}"
        if self.num_labels is not None and not self.multi_label:
            return "num_labels is for multi_label: true only"
        if self.num_labels is not None and self.num_labels != output_shape[-1]:
            return f"num_labels is {self.num_labels}, but the output has {output_shape[-1]} labels"
        return None

    def increments(self, pred, true):
        true = _same_shape(true, pred)
        if self.from_logits:
            with np.errstate(over="ignore"):  # exp of a large negative logit: inf, and the sigmoid 0
                pred = 1.0 / (1.0 + np.exp(-pred))
        n = self.num_thresholds
        buckets = np.ceil(np.clip(pred, 0.0, 1.0) * pred.dtype.type(n - 1)).astype(np.int64) - 1
        buckets = np.maximum(buckets, 0)
        positive = (true != 0).astype(np.float64)
        if not self.multi_label:
            buckets, positive = buckets.reshape(-1, 1), positive.reshape(-1, 1)
        labels = buckets.shape[-1]
        tp = np.zeros((n, labels))
        fp = np.zeros((n, labels))
        for label in range(labels):
            tp[:, label] = np.bincount(buckets[:, label], positive[:, label], minlength=n)
            fp[:, label] = np.bincount(buckets[:, label], 1.0 - positive[:, label], minlength=n)
        tp, fp = np.cumsum(tp[::-1], axis=0)[::-1], np.cumsum(fp[::-1], axis=0)[::-1]  # prediction above each
        return {"tp": tp, "fp": fp, "tn": (1.0 - positive).sum(0) - fp, "fn": positive.sum(0) - tp}

    def result(self, totals):
        tp, fp, tn, fn = totals["tp"], totals["fp"], totals["tn"], totals["fn"]
        if self.curve == "PR" and self.summation_method == "interpolation":
            areas = self._interpolated_pr(tp, fp, fn)
        else:
            recall = _divide(tp, tp + fn)
            x, y = (_divide(fp, fp + tn), recall) if self.curve == "ROC" else (recall, _divide(tp, tp + fp))
            heights = {"interpolation": (y[:-1] + y[1:]) / 2, "minoring": np.minimum(y[:-1], y[1:]),
                       "majoring": np.maximum(y[:-1], y[1:])}[self.summation_method]
            areas = ((x[:-1] - x[1:]) * heights).sum(0)
        return areas.mean()

    @staticmethod
    def _interpolated_pr(tp, fp, fn):
        """Precision interpolated between thresholds as Keras does (AUC.interpolate_pr_auc), per label."""
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return _divide(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0)).sum(0)


# -- the others: r2, F-scores, IoU ---------------------------------------------------------------------------

def _needs_rows_of_units(what: str, output_shape: tuple) -> Optional[str]:
    if len(output_shape) != 1:
        return f"{what} needs an output of one axis (rows, units), as in Keras; this one is {output_shape}"
    return None


@METRICS.register()
class R2Score(MetricSettings):
    type: Literal["r2_score"]
    class_aggregation: Optional[Literal["uniform_average", "variance_weighted_average"]] = "uniform_average"
    num_regressors: NonNegativeInt = 0

    def problem(self, loss, output_shape):
        if self.class_aggregation is None and output_shape[-1] != 1:
            return "class_aggregation: null gives one score per unit; give uniform_average or variance_weighted_average"
        return _needs_rows_of_units("r2_score", output_shape)

    def increments(self, pred, true):
        true, pred = _same_shape(true, pred).astype(np.float64), pred.astype(np.float64)
        return {"sum": true.sum(0), "squared_sum": (true * true).sum(0), "residual": ((true - pred) ** 2).sum(0),
                "count": np.full(true.shape[-1], len(true), np.float64), "samples": true.size}

    def result(self, totals):
        mean = totals["sum"] / totals["count"]
        total = totals["squared_sum"] - totals["sum"] * mean
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = 1 - totals["residual"] / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        score = (raw.mean() if self.class_aggregation == "uniform_average" else
                 (total * raw).sum() / total.sum() if self.class_aggregation == "variance_weighted_average" else raw[0])
        n, p = totals["samples"], self.num_regressors
        if p and p < n - 1:  # Keras warns and keeps the plain score otherwise
            score = 1 - (1 - score) * (n - 1) / (n - p - 1)
        return score


class _FScore(MetricSettings):
    """Keras' FBetaScore: counts per unit (or in all for `average: micro`); `threshold` None marks each row's
    largest prediction, else the predictions above it. `average: null` (Keras' default) gives one score per
    unit, which is no history column: give micro, macro or weighted."""
    average: Optional[Literal["micro", "macro", "weighted"]] = None
    threshold: Optional[Annotated[float, Field(gt=0, le=1)]] = None

    @property
    def weight_of_recall(self) -> float:
        """Keras' beta: how many times more recall counts than precision (1 for F1)."""
        return 1.0

    def problem(self, loss, output_shape):
        if self.average is None:
            return ("average: null (the default) gives one score per unit, not one number per epoch; "
                    "give average: micro, macro or weighted")
        return _needs_rows_of_units(self.type, output_shape)

    def increments(self, pred, true):
        true = _same_shape(true, pred).astype(np.float64)
        if self.threshold is None:
            marked = (pred >= pred.max(-1, keepdims=True)) & (np.abs(pred) > 1e-9)
        else:
            marked = pred > self.threshold
        marked = marked.astype(np.float64)
        axis = None if self.average == "micro" else 0
        return {"tp": (marked * true).sum(axis), "fp": (marked * (1 - true)).sum(axis),
                "fn": ((1 - marked) * true).sum(axis), "support": true.sum(axis)}

    def result(self, totals):
        tp, beta2 = totals["tp"], self.weight_of_recall ** 2
        precision = tp / (tp + totals["fp"] + EPSILON)
        recall = tp / (tp + totals["fn"] + EPSILON)
        score = precision * recall / (beta2 * precision + recall + EPSILON) * (1 + beta2)
        if self.average == "weighted":
            return (score * totals["support"] / (totals["support"].sum() + EPSILON)).sum()
        return np.mean(score)


@METRICS.register()
class FBetaScore(_FScore):
    type: Literal["fbeta_score"]
    beta: PositiveFloat = 1.0

    @property
    def weight_of_recall(self):
        return self.beta


@METRICS.register()
class F1Score(_FScore):
    type: Literal["f1_score"]


class _IoU(MetricSettings):
    """Keras' IoU family: a confusion matrix of class ids over the epoch (predictions as class ids when
    `sparse_y_pred`, Keras' default, else their arg-max along `axis`; targets likewise)."""
    num_classes: PositiveInt
    ignore_class: Optional[int] = None
    sparse_y_true: bool = True
    sparse_y_pred: bool = True
    axis: int = -1

    def target_ids(self) -> list[int]:
        raise NotImplementedError

    def problem(self, loss, output_shape):
        beyond = [i for i in self.target_ids() if not 0 <= i < self.num_classes]
        if beyond:
            return f"target_class_ids {beyond} are not among the {self.num_classes} classes"
        targets = output_shape[:-1] if loss.targets == "labels" else output_shape
        # `axis` counts the rows' axis, as Keras' does
        predicted = int(np.prod(output_shape)) // (1 if self.sparse_y_pred else (0, *output_shape)[self.axis])
        true = int(np.prod(targets)) // (1 if self.sparse_y_true or not targets else (0, *targets)[self.axis])
        if predicted != true:
            return (f"it compares {predicted} predicted class id(s) per row with {true} target id(s): set "
                    "sparse_y_pred / sparse_y_true to how the output and its targets hold classes")
        return None

    def increments(self, pred, true):
        true = (np.asarray(true) if self.sparse_y_true else np.asarray(true).argmax(self.axis)).astype(np.int64)
        pred = (pred if self.sparse_y_pred else pred.argmax(self.axis)).astype(np.int64)  # truncates, as Keras
        true, pred = true.reshape(-1), pred.reshape(-1)
        valid = (true >= 0) & (true < self.num_classes) & (pred >= 0) & (pred < self.num_classes)
        if self.ignore_class is not None:
            valid &= true != self.ignore_class
        matrix = np.bincount(np.where(valid, true, 0) * self.num_classes + np.where(valid, pred, 0),
                             weights=valid.astype(np.float64), minlength=self.num_classes ** 2)
        return {"confusion": matrix.reshape(self.num_classes, self.num_classes)}

    def result(self, totals):
        matrix = totals["confusion"]
        tp = np.diag(matrix)
        denominator = (matrix.sum(0) + matrix.sum(1) - tp)[self.target_ids()]
        valid = denominator > 1e-9
        iou = np.where(valid, tp[self.target_ids()] / (denominator + EPSILON), 0.0)
        return iou.sum() / (valid.sum() + EPSILON)


@METRICS.register()
class IoU(_IoU):
    type: Literal["iou"]
    target_class_ids: list[NonNegativeInt] = Field(min_length=1)

    def target_ids(self):
        return self.target_class_ids


@METRICS.register()
class MeanIoU(_IoU):
    type: Literal["mean_iou"]

    def target_ids(self):
        return list(range(self.num_classes))


canonical_metric = METRICS.settings  # a spec's spelling of one, as {type: its registered name, ...}

