"""Datasets: arrays from .npz files mapped onto a model's named inputs and outputs, checked and cast."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import KeyPath, Problem, SpecError, did_you_mean
from ..graph import Graph
from .npz import NpzArchive, NpzError

FLOAT32_EXACT_INT = 2 ** 24  # every integer up to this magnitude is exact in float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Dataset:
    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    sample_weight: Optional[np.ndarray] = None  # float32, one per row: each row's loss is multiplied by it

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, index) -> "Dataset":
        return Dataset({k: v[index] for k, v in self.inputs.items()},
                       {k: v[index] for k, v in self.targets.items()},
                       None if self.sample_weight is None else self.sample_weight[index])


class _Report:
    """Problems about one data file: located at a spec key when the spec named the file, else at the file."""

    def __init__(self, file: str, where: Optional[KeyPath]):
        self.file, self.where = file, where
        self.problems: list[Problem] = []

    def add(self, message: str, key: KeyPath = ()):
        if self.where is None:
            self.problems.append(Problem(f"{message}", (), self.file))
        else:
            self.problems.append(Problem(f"{self.file}: {message}", self.where + key))

    def raise_if_any(self):
        if self.problems:
            raise SpecError(self.problems)


def cast(array: np.ndarray, dtype: str) -> tuple[Optional[np.ndarray], str]:
    """The array as `dtype` when that loses nothing a model cares about, else (None, why not)."""
    kind = array.dtype.kind
    if kind not in "biuf":
        return None, f"has dtype {array.dtype}; numbers are needed"
    if dtype == "float32":
        # (not np.abs: the most negative integer is its own absolute value)
        if kind in "iu" and array.size and (array.min() < -FLOAT32_EXACT_INT or array.max() > FLOAT32_EXACT_INT):
            return None, f"has integers beyond {FLOAT32_EXACT_INT}, which float32 cannot hold exactly"
        return as_float32(array)
    if kind == "f":
        return None, _dtype_problem(array.dtype, dtype)
    info = np.iinfo(dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
        return None, f"has values outside the range of {dtype}"
    return array.astype(dtype, copy=False), ""


def as_float32(array: np.ndarray) -> tuple[Optional[np.ndarray], str]:
    """Numbers as float32, else (None, why not): NaN or infinite values, or values beyond float32's range (which
    the cast would make infinite). Rounding float64 to float32 is allowed: it is what training in float32 means."""
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            return None, f"has NaN or infinite values (first at row {int(np.argwhere(bad)[0][0])})"
        if array.dtype.itemsize > 4:
            bad = np.abs(array) > FLOAT32_MAX
            if bad.any():
                at = tuple(np.argwhere(bad)[0])
                return None, f"has values beyond float32's range (±{FLOAT32_MAX:.3g}), the first {array[at]:.4g} " \
                             f"at row {at[0]}"
    return array.astype(np.float32, copy=False), ""


def load_dataset(path: Path, graph: Graph, target_kinds: dict[str, str], input_names: Optional[dict[str, str]],
                 target_names: Optional[dict[str, str]], where: Optional[KeyPath], with_targets: bool = True,
                 shown_as: Optional[str] = None, sample_weight: Optional[str] = None) -> Dataset:
    """Read, check and cast one data file for `graph`.

    `target_kinds` says what each output's loss compares with (train.losses.TargetKind).
    `input_names`/`target_names` map model names to array names (None: arrays named like the model's).
    `sample_weight` names an array of per-row loss weights. `where` is the spec key that named the file, so
    problems point there; None for files given on the command line."""
    report = _Report(shown_as or str(path), where)

    def key(section, model_name):
        return (section, model_name) if (input_names if section == "inputs" else target_names) else ()
    try:
        with NpzArchive(path) as archive:
            headers = archive.headers
            inputs = _pick(headers, graph.inputs, input_names, "inputs", "input", report)
            targets = _pick(headers, graph.outputs, target_names, "targets", "output", report) if with_targets else {}
            if sample_weight is not None and sample_weight not in headers:
                report.add(f"no array '{sample_weight}' for sample_weight{did_you_mean(sample_weight, headers)} "
                           f"(arrays: {', '.join(sorted(headers)) or 'none'})", ("sample_weight",))
            report.raise_if_any()
            arrays = archive.read(_readable(headers, inputs, targets, sample_weight, key, report))
    except NpzError as e:
        for message in e.messages:
            report.add(message)
        report.raise_if_any()
    inputs = {name: (array_name, arrays[array_name]) for name, (array_name, _) in inputs.items()
              if array_name in arrays}
    targets = {name: (array_name, arrays[array_name]) for name, (array_name, _) in targets.items()
               if array_name in arrays}

    rows = {}
    out_inputs = {}
    for name, (array_name, array) in inputs.items():
        why = _input_shape_problem(array.shape, name, graph.inputs[name])
        if why:
            report.add(f"array '{array_name}' {why}", key("inputs", name))
            continue
        converted, why = cast(array, graph.input_dtypes[name])
        if converted is None:
            report.add(f"array '{array_name}' {why}", key("inputs", name))
            continue
        for limit, row, value in _ids_out_of_range(graph, name, converted):
            report.add(f"array '{array_name}' has id {value} at row {row}, outside [0, {limit}) of the "
                       "Embedding it feeds", key("inputs", name))
        out_inputs[name] = converted
        rows[f"array '{array_name}'"] = len(array)
    out_targets = {}
    for name, (array_name, array) in targets.items():
        converted, why = _target(array, graph.shapes[name], target_kinds[name])
        if converted is None:
            report.add(f"array '{array_name}' {why} (target of output '{name}')", key("targets", name))
            continue
        out_targets[name] = converted
        rows[f"array '{array_name}'"] = len(array)
    weights = None
    if sample_weight in arrays:
        weights = _sample_weight(arrays, sample_weight, report)
        if weights is not None:
            rows[f"array '{sample_weight}'"] = len(weights)
    if len(set(rows.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in rows.items())
        report.add(f"arrays have different numbers of rows ({listed})")
    if not report.problems and rows and min(rows.values()) == 0:
        report.add("has no rows")
    report.raise_if_any()
    return Dataset(out_inputs, out_targets, weights)


def _readable(headers: dict, inputs: dict, targets: dict, sample_weight: Optional[str], key, report) -> set[str]:
    """The arrays worth unpacking, judged by their headers: an array that is not numbers, or is a single value
    rather than rows, is reported at each use instead."""
    uses = [(array_name, key("inputs", name), "", "numbers are needed") for name, (array_name, _) in inputs.items()]
    uses += [(array_name, key("targets", name), f" (target of output '{name}')", "numbers are needed")
             for name, (array_name, _) in targets.items()]
    if sample_weight is not None:
        uses.append((sample_weight, ("sample_weight",), "", "sample weights are numbers"))
    readable = set()
    for array_name, at, feeds, numbers in uses:
        header = headers[array_name]
        if header.dtype.kind not in "biuf":
            report.add(f"array '{array_name}' has dtype {header.dtype}; {numbers}{feeds}", at)
        elif header.shape == ():
            report.add(f"array '{array_name}' is a single value (shape ()); data has one row per sample{feeds}", at)
        else:
            readable.add(array_name)
    return readable


def _sample_weight(arrays: dict, name: str, report: _Report) -> Optional[np.ndarray]:
    """Per-row weights: one finite, non-negative number per row."""
    key = ("sample_weight",)
    array = arrays[name]
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        report.add(f"array '{name}' has shape {array.shape}; sample weights are one number per row: (rows,)", key)
        return None
    bad = np.flatnonzero(~np.isfinite(array) | (array < 0))
    if len(bad):
        report.add(f"array '{name}' has {'a negative' if np.isfinite(array[bad[0]]) else 'a NaN or infinite'} "
                   f"weight at row {bad[0]}; sample weights are finite and not negative", key)
        return None
    weights, why = as_float32(array)
    if weights is None:
        report.add(f"array '{name}' {why}", key)
    return weights


def class_weights(data: Dataset, output: str, class_weight: dict[int, float]) -> Dataset:
    """The data with each row's weight multiplied by its class's (Keras' class_weight: labels, one-hot rows by
    their largest entry, a single probability rounded); classes not listed weigh 1."""
    y = data.targets[output]
    if y.ndim > 1 and y.shape[-1] != 1:
        labels = y.argmax(axis=-1)
    else:
        labels = np.round(y.reshape(len(y))).astype(np.int64)
    table = np.ones(max([*class_weight, int(labels.max(initial=0))]) + 1, np.float32)
    for index, weight in class_weight.items():
        table[index] = weight
    weights = table[labels.reshape(len(y))]
    if data.sample_weight is not None:
        weights = weights * data.sample_weight
    return Dataset(data.inputs, data.targets, weights.astype(np.float32))


def _pick(arrays, model_names, mapping, section, what, report) -> dict:
    picked = {}
    for name in model_names:
        array_name = (mapping or {}).get(name, name)
        if array_name in arrays:
            picked[name] = (array_name, arrays[array_name])
            continue
        have = ", ".join(sorted(arrays)) or "none"
        hint = did_you_mean(array_name, arrays)
        mapped = (section, name) if mapping and name in mapping else ()
        tip = "" if mapped else f"; map it with `{section}: {{{name}: ARRAY}}`"
        report.add(f"no array '{array_name}' for {what} '{name}'{hint} (arrays: {have}){tip}", mapped)
    return picked


def _target(array: np.ndarray, shape: tuple, kind: str):
    """Targets cast for their loss: integer labels in range for a loss on labels, float32 otherwise (`kind`:
    what the loss compares with, train.losses.TargetKind)."""
    why = _dtype_problem(array.dtype, "float32") or _target_shape_problem(array.shape, shape, kind)
    if why:
        return None, why
    if kind == "labels":
        want, classes = shape[:-1], shape[-1]
        labels = array.reshape(len(array), *want)
        if labels.dtype.kind == "f":
            if not np.isfinite(labels).all():
                row = int(np.argwhere(~np.isfinite(labels))[0][0])
                return None, f"has NaN or infinite values (first at row {row}); class labels are integers"
            if not np.array_equal(labels, np.round(labels)):
                return None, "holds non-integer values; class labels are integers"
        # in range before the cast to int64, which would wrap or warn on values beyond it
        bad = np.argwhere((labels < 0) | (labels >= classes))
        if len(bad):
            label = labels[tuple(bad[0])]
            shown = f"{label:.15g}" if labels.dtype.kind == "f" else str(label)
            return None, f"has label {shown} at row {bad[0][0]}, outside [0, {classes}) of the output's classes"
        return labels.astype(np.int64), ""
    return as_float32(array.reshape(len(array), *shape))


def _input_shape_problem(shape: tuple, name: str, need: tuple) -> str:
    return "" if shape[1:] == need else f"has shape {shape}; input '{name}' needs {show_rows(need)}"


def _dtype_problem(dtype: np.dtype, input_dtype: str) -> str:
    """Why an array of `dtype` cannot feed an input of `input_dtype` ('' when it can, values permitting)."""
    if dtype.kind not in "biuf":
        return f"has dtype {dtype}; numbers are needed"
    if input_dtype != "float32" and dtype.kind == "f":
        return f"has dtype {dtype}; the input is {input_dtype} (integer ids)"
    return ""


def _target_shape_problem(shape: tuple, output_shape: tuple, kind: str) -> str:
    """Why targets of `shape` do not fit an output of `output_shape` and its loss's kind of target."""
    if kind == "labels":
        want = output_shape[:-1]
        if shape[1:] not in (want, (*want, 1)):
            return f"has shape {shape}; class labels of shape {show_rows(want)} are needed"
    elif shape[1:] != output_shape and not (output_shape == (1,) and len(shape) == 1):
        return f"has shape {shape}; {show_rows(output_shape)} is needed"
    return ""


def check_headers(path: Path, graph: Graph, target_kinds: dict[str, str], input_names: Optional[dict[str, str]],
                  target_names: Optional[dict[str, str]], where: KeyPath, shown_as: Optional[str] = None,
                  sample_weight: Optional[str] = None) -> list[Problem]:
    """What the headers of a data file show to be wrong for `graph` (arguments as for load_dataset): a file that
    is missing or not an .npz, an array missing, of the wrong shape or dtype, arrays of different numbers of rows.
    No array is read: the values (NaN, ids out of range, labels beyond the classes) are checked when training."""
    report = _Report(shown_as or str(path), where)
    try:
        with NpzArchive(path) as archive:
            headers = archive.headers
    except NpzError as e:
        for message in e.messages:
            report.add(message)
        return report.problems
    inputs = _pick(headers, graph.inputs, input_names, "inputs", "input", report)
    targets = _pick(headers, graph.outputs, target_names, "targets", "output", report)
    rows = {}
    for name, (array_name, header) in inputs.items():
        at = ("inputs", name) if input_names else ()
        why = _dtype_problem(header.dtype, graph.input_dtypes[name]) or \
            _input_shape_problem(header.shape, name, graph.inputs[name])
        if why:
            report.add(f"array '{array_name}' {why}", at)
        else:
            rows[f"array '{array_name}'"] = header.shape[0]
    for name, (array_name, header) in targets.items():
        at = ("targets", name) if target_names else ()
        why = _dtype_problem(header.dtype, "float32") or (
            "is a single value (shape ()); data has one row per sample" if header.shape == () else
            _target_shape_problem(header.shape, graph.shapes[name], target_kinds[name]))
        if why:
            report.add(f"array '{array_name}' {why} (target of output '{name}')", at)
        else:
            rows[f"array '{array_name}'"] = header.shape[0]
    if sample_weight is not None:
        header = headers.get(sample_weight)
        if header is None:
            report.add(f"no array '{sample_weight}' for sample_weight{did_you_mean(sample_weight, headers)} "
                       f"(arrays: {', '.join(sorted(headers)) or 'none'})", ("sample_weight",))
        elif header.dtype.kind not in "biuf" or len(header.shape) not in (1, 2) or header.shape[1:] not in ((), (1,)):
            report.add(f"array '{sample_weight}' has shape {header.shape} and dtype {header.dtype}; sample weights "
                       "are one number per row: (rows,)", ("sample_weight",))
        else:
            rows[f"array '{sample_weight}'"] = header.shape[0]
    if len(set(rows.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in rows.items())
        report.add(f"arrays have different numbers of rows ({listed})")
    return report.problems


def _ids_out_of_range(graph: Graph, input_name: str, ids: np.ndarray):
    """(limit, row, value) for the first id of `ids` outside an Embedding it feeds."""
    for limit in sorted(set(graph.id_limits(input_name))):
        bad = np.argwhere((ids < 0) | (ids >= limit))
        if len(bad):
            yield limit, int(bad[0][0]), int(ids[tuple(bad[0])])
            return


def show_rows(shape: tuple) -> str:
    return "(" + ", ".join(["rows", *map(str, shape)]) + ")"


def split(data: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """Keras' validation_split: the last `fraction` of the rows, taken before any shuffling."""
    cut = data.rows - int(round(data.rows * fraction))
    return data.take(slice(0, cut)), data.take(slice(cut, None))
