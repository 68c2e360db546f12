"""Checks of a spec's training sections against its compiled graph, before any training starts: `compile`
and `data` name the model's own outputs and inputs, callbacks watch names the run logs and write files
inside the run folder, class weights fit the output."""
from __future__ import annotations

import re
import string
from pathlib import PurePosixPath
from typing import Optional

from ..errors import KeyPath, Problem, did_you_mean
from ..graph import Graph
from ..layers import show_shape
from .objective import history_names, metric_names
from .run import CHECKPOINT, HISTORY, RUN_FILES, SPEC

MAX_FORMAT_WIDTH = 64  # a file name pattern's field width: `{epoch:4000000000d}` would take gigabytes


def has_validation(spec) -> Optional[bool]:
    """Whether the spec's data has a validation set; None when the spec names no data (it is given in code)."""
    if spec.data is None:
        return None
    return spec.data.validation is not None or spec.data.validation_split > 0


def spec_history_names(spec, graph: Graph, validation: Optional[bool]) -> list[str]:
    """What a run of this spec logs each epoch."""
    extra = spec.compile.optimizer.logs + tuple(name for callback in spec.fit.callbacks for name in callback.logs)
    return history_names(graph.outputs, metric_names(spec.compile, graph.outputs), validation, extra)


def check_training(spec, graph: Graph, validation: Optional[bool] = None) -> list[Problem]:
    """Every problem of the training sections (key paths, not yet positions). `validation` says whether there
    is validation data when the spec names none (data given in code)."""
    problems: list[Problem] = []
    if spec.data is not None and spec.data.validation is not None and spec.data.validation_split > 0:
        problems.append(Problem("give either `validation` or `validation_split`, not both",
                                ("data", "validation_split")))
    _check_names(spec, graph, problems)
    _check_losses_and_metrics(spec, graph, problems)
    validation = has_validation(spec) if validation is None else validation
    logged = spec_history_names(spec, graph, validation)
    for i, callback in enumerate(spec.fit.callbacks):
        path = ("fit", "callbacks", i)
        why = monitor_problem(callback, logged, validation)
        if why:
            problems.append(Problem(why, path + ("monitor",)))
        conflict = callback.optimizer_problem(spec.compile.optimizer)
        if conflict:
            problems.append(Problem(conflict, path))
        for key, name in callback.files().items():
            for message in file_name_problems(callback, name, logged):
                problems.append(Problem(message, path + (key,)))
    if spec.fit.class_weight is not None:
        _check_class_weight(spec, graph, problems)
    return problems


def _check_names(spec, graph: Graph, problems: list[Problem]):
    outputs = graph.outputs

    def known(names_given, what: str, choices: list[str], path: KeyPath):
        for name in names_given:
            if name not in choices:
                problems.append(Problem(f"'{name}' is not a model {what}{did_you_mean(name, choices)}; "
                                        f"the model's {what}s: {', '.join(choices)}", path + (name,), at_key=True))

    loss = spec.compile.loss
    if isinstance(loss, dict):
        known(loss, "output", outputs, ("compile", "loss"))
        for out in outputs:
            if out not in loss:
                problems.append(Problem(f"output '{out}' has no loss; give one for every output", ("compile", "loss")))
    weights = spec.compile.loss_weights
    if isinstance(weights, dict):
        known(weights, "output", outputs, ("compile", "loss_weights"))
    elif isinstance(weights, list) and len(weights) != len(outputs):
        problems.append(Problem(f"{len(weights)} loss weight(s) for {len(outputs)} output(s)",
                                ("compile", "loss_weights")))
    if isinstance(spec.compile.metrics, dict):
        known(spec.compile.metrics, "output", outputs, ("compile", "metrics"))
    if spec.data is not None:
        for part in ("train", "validation"):
            source = getattr(spec.data, part)
            if source is None:
                continue
            if source.inputs is not None:
                known(source.inputs, "input", list(graph.inputs), ("data", part, "inputs"))
            if source.targets is not None:
                known(source.targets, "output", outputs, ("data", part, "targets"))


def monitor_problem(callback, logged: list[str], validation: Optional[bool]) -> Optional[str]:
    """Why a callback cannot watch what it monitors, or None."""
    monitor = getattr(callback, "monitor", None)
    if monitor is None or monitor in logged:
        return None
    default = "" if "monitor" in callback.model_fields_set else " (the default)"
    said = f"{callback.type} monitors '{monitor}'{default}"
    if monitor.startswith("val_") and not validation and monitor[4:] in logged:
        return (f"{said}, but the run has no validation data; add `data.validation` or "
                f"`data.validation_split`, or monitor '{monitor[4:]}'")
    return f"{said}, which the run does not log{did_you_mean(monitor, logged)}; it logs: {', '.join(logged)}"


def file_name_problems(callback, name: str, logged: list[str]) -> list[str]:
    """A callback's file name: a pattern of logged names, inside the run folder, not one of the run's own files."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name:
        return [f"'{name}' leaves the run folder; a callback writes inside it, so give a name relative to it "
                "without '..' (e.g. best.npz)"]
    if callback.type == "model_checkpoint" and not name.endswith(".npz"):
        return [f"'{name}' must end in .npz (a checkpoint is an .npz archive)"]
    try:
        fields = [(f, spec) for _, f, spec, _ in string.Formatter().parse(name) if f is not None]
    except ValueError as e:
        return [f"'{name}' is not a valid pattern: {e}"]
    for field_name, spec in fields:
        if field_name != "epoch" and field_name not in logged:
            return [f"'{{{field_name}}}' in '{name}' is not a name the run logs"
                    f"{did_you_mean(field_name, ['epoch', *logged])}; it may use {{epoch}} and: {', '.join(logged)}"]
        if any(int(width) > MAX_FORMAT_WIDTH for width in re.findall(r"\d+", spec or "")):
            return [f"'{{{field_name}:{spec}}}' in '{name}' is wider than {MAX_FORMAT_WIDTH} characters"]
    try:
        formatted = name.format(epoch=1, **{logged_name: 0.5 for logged_name in logged})
    except (ValueError, IndexError, KeyError) as e:
        return [f"'{name}' cannot be formatted: {e}"]
    own = PurePosixPath(formatted).as_posix()
    if own == CHECKPOINT and callback.type == "model_checkpoint" and not (callback.save_best_only
                                                                         or callback.save_weights_only):
        return []  # the run's own checkpoint, which is written after every epoch anyway
    if own == HISTORY and callback.type == "csv_logger" and callback.separator == ",":
        return []  # the run's own history.csv, likewise
    if own in (*RUN_FILES, SPEC):
        purpose = {CHECKPOINT: "own checkpoint, written after every epoch for --resume",
                   HISTORY: "own history, written after every epoch"}.get(own, "own file")
        return [f"'{own}' is the run's {purpose}; give this one another name, e.g. "
                f"{'best.npz' if callback.type == 'model_checkpoint' else 'log.csv'}"]
    return []


def _check_class_weight(spec, graph: Graph, problems: list[Problem]):
    path = ("fit", "class_weight")
    if len(graph.outputs) != 1:
        problems.append(Problem(f"class_weight needs a model with one output; this one has {len(graph.outputs)} "
                                f"({', '.join(graph.outputs)}): give per-row weights with `data.train.sample_weight`",
                                path))
        return
    (output,) = graph.outputs
    loss = spec.compile.loss_of(output)
    shape = graph.shapes[output]
    if loss is None or not loss.classifies or len(shape) != 1:
        problems.append(Problem(f"class_weight weights classes, but output '{output}' of shape {show_shape(shape)} "
                                f"with loss {loss.type if loss else None} has none; give per-row weights with "
                                "`data.train.sample_weight`", path))
        return
    classes = 2 if shape[-1] == 1 else shape[-1]
    for index in spec.fit.class_weight:
        if index >= classes:
            problems.append(Problem(f"class {index} is outside [0, {classes}) of output '{output}'", path + (index,),
                                    at_key=True))


def _check_losses_and_metrics(spec, graph: Graph, problems: list[Problem]):
    """A loss's `axis` is an axis of its output other than the rows', and class ids are along the last one;
    each metric fits its output, and the metrics of one output log under distinct names."""
    compile_spec = spec.compile
    for out in graph.outputs:
        loss, shape = compile_spec.loss_of(out), graph.shapes[out]
        loss_at: KeyPath = ("compile", "loss", *((out,) if isinstance(compile_spec.loss, dict) else ()))
        axis, rank = getattr(loss, "axis", None), len(shape) + 1
        if axis is not None and not (1 <= axis < rank or -rank < axis <= -1):
            problems.append(Problem(f"axis {axis} is not an axis of output '{out}' (rows, "
                                    f"{', '.join(map(str, shape))}) other than the rows': give 1 to {rank - 1}, "
                                    f"or -1 to {1 - rank}", loss_at + ("axis",)))
        elif axis is not None and loss is not None and loss.targets == "labels" and axis not in (-1, rank - 1):
            problems.append(Problem(f"targets of {loss.type} are class ids along the output's last axis; give "
                                    "axis -1", loss_at + ("axis",)))
        ignored = getattr(loss, "ignore_class", None)
        if ignored is not None and not 0 <= ignored < shape[-1]:
            problems.append(Problem(f"ignore_class {ignored} is not a class of output '{out}' ({shape[-1]} classes): "
                                    f"targets are read as class ids in [0, {shape[-1]}), so give one of them",
                                    loss_at + ("ignore_class",)))
        seen: set[str] = set()
        for i, metric in enumerate(compile_spec.metrics_of(out)):
            at: KeyPath = ("compile", "metrics", *((out,) if isinstance(compile_spec.metrics, dict) else ()), i)
            why = metric.problem(loss, shape) if loss is not None else None
            if why:
                problems.append(Problem(f"{metric.type} on output '{out}': {why}", at))
            if metric.column in seen:
                problems.append(Problem(f"two metrics of output '{out}' log '{metric.column}'; give one a `name:` "
                                        "(its history column)", at))
            seen.add(metric.column)
