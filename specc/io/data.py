"""Datasets: arrays from .npz files (one, or shards whose rows follow one another) mapped onto a model's named
inputs and outputs, checked and cast.

Headers are checked first, for every shard, without reading any values. A dataset of MAPPED_BYTES or more is
memory-mapped (members stored as np.savez writes them) and its rows are read and cast a batch at a time; a
smaller one is read whole and cast once. Values are checked by their summaries (io/values.py), in chunks."""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generic, Optional, Sequence, TypeVar, Union

import numpy as np

from ..errors import KeyPath, Problem, SpecError, did_you_mean
from ..graph import Graph
from ..runtime.heap import show_bytes
from .npz import ArrayHeader, NpyFolder, NpzArchive, NpzError, open_arrays
from .rows import Rows, row_chunks
from .values import Rule, Summaries, Summary, first_problem

FLOAT32_EXACT_INT = 2 ** 24  # every integer up to this magnitude is exact in float32
FLOAT32_MAX = float(np.finfo(np.float32).max)
MAPPED_BYTES = 64 * 2 ** 20  # datasets of at least this many bytes are mapped rather than read whole

Column = Union[np.ndarray, Rows]  # rows in memory, or read on demand
Arrays = Union[NpzArchive, NpyFolder]


@dataclass(frozen=True)
class Source:
    """A data file (or folder) a dataset was read from: as the spec names it, its identity (io.npz: names,
    shapes and CRCs), and the size and modification time of its files when read."""
    shown: str
    identity: str
    stamps: list[tuple[str, int, int]]

    def changed(self) -> bool:
        for path, size, time in self.stamps:
            try:
                status = os.stat(path)
            except OSError:
                return True
            if (status.st_size, status.st_mtime_ns) != (size, time):
                return True
        return False


class DataChanged(SpecError):
    """A data file changed while a run was reading it."""


C = TypeVar("C", np.ndarray, Column)


@dataclass
class Dataset(Generic[C]):
    """Inputs and targets by model name, as arrays in memory (a batch, or data read whole) or as Rows read on
    demand; their per-row weights; the files they came from."""
    inputs: dict[str, C]
    targets: dict[str, C]
    sample_weight: Optional[np.ndarray] = None  # float32, one per row: each row's loss is multiplied by it
    sources: list[Source] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(next(iter(self.inputs.values())))

    def _on_demand(self) -> list[Rows]:
        """The columns read from their parts as they are taken."""
        return [c for c in [*self.inputs.values(), *self.targets.values()] if isinstance(c, Rows)]

    @property
    def mapped(self) -> bool:
        """Whether rows are read from files as they are taken (worth preparing ahead of their use)."""
        return any(column.mapped for column in self._on_demand())

    def advise(self, shuffled: bool):
        """How its mapped rows will be read next (Rows.advise)."""
        for column in self._on_demand():
            column.advise(shuffled)

    def resident(self) -> float:
        """The share of its mapped rows' pages in memory now (1.0 for data in memory)."""
        columns = self._on_demand()
        sizes = [sum(part.nbytes for part in c.parts) for c in columns]
        return sum(c.resident() * size for c, size in zip(columns, sizes)) / sum(sizes) if sum(sizes) else 1.0

    def expect(self, index: np.ndarray):
        """Starts reading the mapped rows at `index` (sorted row numbers) from disk (Rows.expect)."""
        for column in self._on_demand():
            column.expect(index)

    def take(self, index) -> "Dataset[np.ndarray]":
        """The rows at `index` (a slice or row numbers), in memory."""
        return Dataset({k: v[index] for k, v in self.inputs.items()},
                       {k: v[index] for k, v in self.targets.items()},
                       None if self.sample_weight is None else self.sample_weight[index])

    def between(self, start: int, stop: int) -> "Dataset[C]":
        """Rows start to stop, read on demand when these are."""
        def part(column):
            return column.between(start, stop) if isinstance(column, Rows) else column[start:stop]
        return Dataset({k: part(v) for k, v in self.inputs.items()}, {k: part(v) for k, v in self.targets.items()},
                       None if self.sample_weight is None else self.sample_weight[start:stop], self.sources)

    def identities(self) -> dict[str, str]:
        """Each file's identity (Source.identity), by the name the spec gives it."""
        return {source.shown: source.identity for source in self.sources}

    def check_unchanged(self):
        """DataChanged when a file the data is mapped from was rewritten since it was opened: its rows could
        be anything now, or missing."""
        changed = [source.shown for source in self.sources if source.changed()]
        if changed and self.mapped:
            raise DataChanged([Problem("changed while training read it; the run stops here (its last checkpoint "
                                       "is kept): resume it once the file is back as it was, or start a new run",
                                       (), name) for name in changed])


class _Report:
    """Problems about data files: located at a spec key when the spec named the files, else at the file."""

    def __init__(self, where: Optional[KeyPath]):
        self.where = where
        self.problems: list[Problem] = []

    def add(self, file: str, message: str, key: KeyPath = ()):
        if self.where is None:
            self.problems.append(Problem(f"{message}", (), file))
        else:
            self.problems.append(Problem(f"{file}: {message}", self.where + key))

    def raise_if_any(self):
        if self.problems:
            raise SpecError(self.problems)


@dataclass
class _Use:
    """One array as the model uses it: where problems with it are located, what it feeds (said after each
    problem), its dtype and row shape once cast, and the rules its values keep."""
    role: tuple  # ("inputs", name), ("targets", name) or ("sample_weight",)
    array: str
    key: KeyPath
    feeds: str
    dtype: str
    row_shape: tuple
    rules: list[Rule]


def load_dataset(path: Union[Path, Sequence[Path]], graph: Graph, target_kinds: dict[str, str],
                 input_names: Optional[dict[str, str]], target_names: Optional[dict[str, str]],
                 where: Optional[KeyPath], with_targets: bool = True,
                 shown_as: Union[str, Sequence[str], None] = None, sample_weight: Optional[str] = None,
                 say: Optional[Callable[[str], None]] = None) -> Dataset:
    """Read, check and cast the data of one file, or of shards whose rows follow one another, for `graph`.

    `target_kinds` says what each output's loss compares with (train.losses.TargetKind).
    `input_names`/`target_names` map model names to array names (None: arrays named like the model's).
    `sample_weight` names an array of per-row loss weights. `where` is the spec key that named the files, so
    problems point there; None for files given on the command line. `say` shows notes and progress."""
    paths, shown = _named(path, shown_as)
    report = _Report(where)
    with contextlib.ExitStack() as stack:
        archives = _open(paths, shown, report, stack)
        uses = _uses(archives, shown, graph, target_kinds, input_names, target_names, with_targets, sample_weight,
                     report, headers_only=False)
        mapped = sum(archive.headers[use.array].nbytes for archive in archives for use in uses
                     if use.array in archive.headers) >= MAPPED_BYTES
        parts = _parts(archives, shown, uses, mapped, say, report)
        _check_values(archives, shown, uses, parts, Summaries(say=say), report)
        report.raise_if_any()
        sources = [Source(name, archive.identity(), archive.stamps()) for archive, name in zip(archives, shown)]
    columns: dict[tuple, Column] = {}
    for use in uses:
        rows = Rows(list(parts[use.array].values()), use.dtype, use.row_shape)
        columns[use.role] = rows if mapped else rows.whole()
    weights = columns.pop(("sample_weight",), None)
    return Dataset({name: column for (role, name), column in columns.items() if role == "inputs"},
                   {name: column for (role, name), column in columns.items() if role == "targets"},
                   None if weights is None else np.asarray(weights), sources)


def check_headers(path: Union[Path, Sequence[Path]], graph: Graph, target_kinds: dict[str, str],
                  input_names: Optional[dict[str, str]], target_names: Optional[dict[str, str]], where: KeyPath,
                  shown_as: Union[str, Sequence[str], None] = None,
                  sample_weight: Optional[str] = None) -> list[Problem]:
    """What the headers of data files show to be wrong for `graph` (arguments as for load_dataset): a file that
    is missing or not an .npz, an array missing, of the wrong shape or dtype, arrays of different numbers of rows,
    shards that disagree. No array is read: the values (NaN, ids out of range, labels beyond the classes) are
    checked when training."""
    paths, shown = _named(path, shown_as)
    report = _Report(where)
    with contextlib.ExitStack() as stack:
        archives = _open(paths, shown, report, stack)
        _uses(archives, shown, graph, target_kinds, input_names, target_names, True, sample_weight, report,
              headers_only=True)
    return report.problems


def _named(path, shown_as) -> tuple[list[Path], list[str]]:
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if shown_as is None:
        return paths, [str(p) for p in paths]
    return paths, [shown_as] if isinstance(shown_as, str) else list(shown_as)


def _open(paths: list[Path], shown: list[str], report: _Report, stack: contextlib.ExitStack) -> list[Arrays]:
    """Every file's archive with its headers checked; problems reported per file (then the list is short)."""
    archives = []
    for path, name in zip(paths, shown):
        try:
            archive = open_arrays(path)
            stack.enter_context(archive)
            archives.append(archive)
        except NpzError as e:
            for message in e.messages:
                report.add(name, message)
    return archives if len(archives) == len(paths) else []


def _same_layout(header: Optional[ArrayHeader], like: ArrayHeader) -> bool:
    return header is not None and (header.dtype, header.shape[1:]) == (like.dtype, like.shape[1:])


def _parts(archives: list[Arrays], shown: list[str], uses: list[_Use], mapped: bool, say,
           report: _Report) -> dict[str, dict[int, np.ndarray]]:
    """parts[array][i]: the array in file i, mapped or read, for every file whose array is laid out like the
    first file's (arrays already reported wrong are still read, for their values: every problem at once)."""
    parts: dict[str, dict[int, np.ndarray]] = {use.array: {} for use in uses}
    unreadable = False
    for i, archive in enumerate(archives):
        wanted = [array for array in parts if _same_layout(archive.headers.get(array), archives[0].headers[array])]
        try:
            for array, values in _arrays(archive, shown[i], wanted, mapped, say).items():
                parts[array][i] = values
        except NpzError as e:  # too large, or damaged
            unreadable = True
            for message in e.messages:
                report.add(shown[i], message)
    if unreadable:
        report.raise_if_any()
    return parts


def _check_values(archives: list[Arrays], shown: list[str], uses: list[_Use], parts: dict[str, dict[int, np.ndarray]],
                  summaries: Summaries, report: _Report):
    """The first value rule each use breaks, found from the arrays' summaries, reported at its file and row."""
    found: dict[str, Summary] = {}
    for i, archive in enumerate(archives):
        arrays = {array: by_file[i] for array, by_file in parts.items() if i in by_file}
        for array, summary in summaries.of(archive, arrays, shown[i]).items():
            found[array] = found.get(array, Summary()).merged(summary)
    for use in uses:
        broken = next((rule for rule in use.rules if rule.broken(found[use.array])), None)
        if broken is not None:
            files = list(parts[use.array])
            index, words = first_problem([parts[use.array][i] for i in files], broken)
            report.add(shown[files[index]], f"array '{use.array}' {words}{use.feeds}", use.key)


def _arrays(archive: Arrays, shown: str, names: list[str], mapped: bool, say) -> dict[str, np.ndarray]:
    """The named arrays of a file: memory-mapped when `mapped` and stored as np.savez writes them, else read."""
    unmapped = [name for name in names if not (mapped and not archive.headers[name].compressed)]
    if mapped and unmapped:
        size = sum(archive.headers[name].nbytes for name in unmapped)
        say = say or _say
        say(f"Note: {shown}: {', '.join(unmapped)} compressed (np.savez_compressed), so read whole "
            f"({show_bytes(size)}); saved with np.savez (uncompressed) they would be read only as batches need them")
    arrays = archive.read(unmapped)
    return {name: arrays[name] if name in arrays else archive.map(name) for name in names}


def _say(text: str):
    print(text, file=sys.stderr)


def _uses(archives: list[Arrays], shown: list[str], graph: Graph, target_kinds: dict[str, str],
          input_names, target_names, with_targets: bool, sample_weight: Optional[str], report: _Report,
          headers_only: bool) -> list[_Use]:
    """The arrays the model uses, judged by the first file's headers (every shard must agree with them); with
    `headers_only`, the value rules are left out."""
    if not archives:
        return []
    headers, file = archives[0].headers, shown[0]
    uses: list[_Use] = []
    key: KeyPath
    for name, (array, header) in _pick(headers, graph.inputs, input_names, "inputs", "input", file, report).items():
        key = ("inputs", name) if input_names else ()
        dtype = graph.input_dtypes[name]
        why = _readable(header, "numbers are needed") or _dtype_problem(header.dtype, dtype) or \
            _input_shape_problem(header.shape, name, graph.inputs[name])
        if why:
            report.add(file, f"array '{array}' {why}", key)
        else:
            rules = _cast_rules(header.dtype, dtype) + _id_rules(graph.id_limits(name))
            uses.append(_Use(("inputs", name), array, key, "", dtype, graph.inputs[name], rules))
    if with_targets:
        picked = _pick(headers, graph.outputs, target_names, "targets", "output", file, report)
        for name, (array, header) in picked.items():
            key, feeds = ("targets", name) if target_names else (), f" (target of output '{name}')"
            kind, shape = target_kinds[name], graph.shapes[name]
            why = _readable(header, "numbers are needed") or _dtype_problem(header.dtype, "float32") or \
                _target_shape_problem(header.shape, shape, kind)
            if why:
                report.add(file, f"array '{array}' {why}{feeds}", key)
            elif kind == "labels":
                uses.append(_Use(("targets", name), array, key, feeds, "int64", shape[:-1],
                                 _label_rules(header.dtype, shape[-1])))
            else:
                uses.append(_Use(("targets", name), array, key, feeds, "float32", shape,
                                 _cast_rules(header.dtype, "float32")))
    if sample_weight is not None:
        header = headers.get(sample_weight)
        key = ("sample_weight",)
        if header is None:
            report.add(file, f"no array '{sample_weight}' for sample_weight{did_you_mean(sample_weight, headers)} "
                             f"(arrays: {', '.join(sorted(headers)) or 'none'})", key)
        elif _readable(header, "sample weights are numbers"):
            report.add(file, f"array '{sample_weight}' {_readable(header, 'sample weights are numbers')}", key)
        elif len(header.shape) not in (1, 2) or header.shape[1:] not in ((), (1,)):
            report.add(file, f"array '{sample_weight}' has shape {header.shape}; sample weights are one number per "
                             "row: (rows,)", key)
        else:
            uses.append(_Use(("sample_weight",), sample_weight, key, "", "float32", (), _weight_rules(header.dtype)))
    _check_rows(archives, shown, uses, report)
    if headers_only:
        for use in uses:
            use.rules = []
    return uses


def _check_rows(archives: list[Arrays], shown: list[str], uses: list[_Use], report: _Report):
    """Every shard holds each array of the first with its dtype and row shape, the arrays of a shard have as
    many rows as each other, and there is at least one row."""
    first = archives[0].headers
    total = 0
    for archive, file in zip(archives, shown):
        rows = {}
        for use in uses:
            header, like = archive.headers.get(use.array), first[use.array]
            if header is None:
                report.add(file, f"no array '{use.array}', which the first file, {shown[0]}, has; shards of a "
                                 "dataset hold the same arrays")
            elif not _same_layout(header, like):
                report.add(file, f"array '{use.array}' {_layout_difference(header, like)} in the first file, "
                                 f"{shown[0]}: shards of a dataset hold the same arrays")
            else:
                rows[f"array '{use.array}'"] = header.shape[0]
        if len(set(rows.values())) > 1:
            listed = ", ".join(f"{k}: {v}" for k, v in rows.items())
            report.add(file, f"arrays have different numbers of rows ({listed})")
        total += max(rows.values(), default=0)
    if uses and not report.problems and total == 0:
        report.add(shown[0], "has no rows")


def _layout_difference(header: ArrayHeader, like: ArrayHeader) -> str:
    said = []
    if header.dtype != like.dtype:
        said.append(f"has dtype {header.dtype}, {like.dtype}")
    if header.shape[1:] != like.shape[1:]:
        said.append(f"has rows of shape {header.shape[1:]}, {like.shape[1:]}")
    return " and ".join(said)


def _readable(header: ArrayHeader, numbers: str) -> str:
    """Why an array cannot be data at all ('' when it can): not numbers, or a single value rather than rows."""
    if header.dtype.kind not in "biuf":
        return f"has dtype {header.dtype}; {numbers}"
    if header.shape == ():
        return "is a single value (shape ()); data has one row per sample"
    return ""


# -- value rules ------------------------------------------------------------------------------------------------

def _row(words: str) -> Callable[[object, int], str]:
    return lambda value, row: words.format(value=value, row=row)


def _finite_rule(suffix: str = "") -> Rule:
    return Rule(lambda s: s.nonfinite, lambda x: ~np.isfinite(x),
                _row("has NaN or infinite values (first at row {row})" + suffix))


def _cast_rules(dtype: np.dtype, into: str) -> list[Rule]:
    """What values of `dtype` need for a cast to `into` to lose nothing a model cares about."""
    if into == "float32":
        if dtype.kind in "iu":
            return [Rule(lambda s: s.lo < -FLOAT32_EXACT_INT or s.hi > FLOAT32_EXACT_INT,
                         lambda x: (x < -FLOAT32_EXACT_INT) | (x > FLOAT32_EXACT_INT),
                         _row(f"has integers beyond {FLOAT32_EXACT_INT}, which float32 cannot hold exactly "
                              "(the first {value} at row {row})"))]
        rules = [_finite_rule()]
        if dtype.itemsize > 4:  # float32 would make them infinite
            rules.append(Rule(lambda s: s.lo < -FLOAT32_MAX or s.hi > FLOAT32_MAX, lambda x: np.abs(x) > FLOAT32_MAX,
                              lambda value, row: f"has values beyond float32's range (±{FLOAT32_MAX:.3g}), the "
                                                 f"first {value:.4g} at row {row}"))
        return rules
    info = np.iinfo(into)
    return [Rule(lambda s: s.lo < info.min or s.hi > info.max, lambda x: (x < info.min) | (x > info.max),
                 _row(f"has values outside the range of {into} (the first {{value}} at row {{row}})"))]


def _id_rules(limits: list[int]) -> list[Rule]:
    """Ids within every Embedding they feed (the smallest first)."""
    return [_id_rule(limit) for limit in sorted(set(limits))]


def _id_rule(limit: int) -> Rule:
    return Rule(lambda s: s.lo < 0 or s.hi >= limit, lambda x: (x < 0) | (x >= limit),
                _row(f"has id {{value}} at row {{row}}, outside [0, {limit}) of the Embedding it feeds"))


def _label_rules(dtype: np.dtype, classes: int) -> list[Rule]:
    def words(value, row):
        shown = f"{value:.15g}" if dtype.kind == "f" else str(value)
        return f"has label {shown} at row {row}, outside [0, {classes}) of the output's classes"
    rules = [_finite_rule("; class labels are integers"),
             Rule(lambda s: not s.integral, lambda x: x != np.round(x),
                  _row("holds non-integer values; class labels are integers"))] if dtype.kind == "f" else []
    return rules + [Rule(lambda s: s.lo < 0 or s.hi >= classes, lambda x: (x < 0) | (x >= classes), words)]


def _weight_rules(dtype: np.dtype) -> list[Rule]:
    rules = [Rule(lambda s: s.nonfinite, lambda x: ~np.isfinite(x),
                  _row("has a NaN or infinite weight at row {row}; sample weights are finite and not negative"))] \
        if dtype.kind == "f" else []
    rules.append(Rule(lambda s: s.lo < 0, lambda x: x < 0,
                      _row("has a negative weight at row {row}; sample weights are finite and not negative")))
    as_float32 = _cast_rules(dtype, "float32")
    return rules + (as_float32[1:] if dtype.kind == "f" else as_float32)  # (finiteness is checked above)


def class_weights(data: Dataset, output: str, class_weight: dict[int, float]) -> Dataset:
    """The data with each row's weight multiplied by its class's (Keras' class_weight: labels, one-hot rows by
    their largest entry, a single probability rounded); classes not listed weigh 1. The targets are read a
    chunk of rows at a time; the weights are one number per row."""
    y = data.targets[output]
    labels = np.empty(len(y), np.int64)
    for start, chunk in row_chunks(y, 2 ** 24):
        if chunk.ndim > 1 and chunk.shape[-1] != 1:
            labels[start:start + len(chunk)] = chunk.argmax(axis=-1).reshape(len(chunk))
        else:
            labels[start:start + len(chunk)] = np.round(chunk.reshape(len(chunk))).astype(np.int64)
    table = np.ones(max([*class_weight, int(labels.max(initial=0))]) + 1, np.float32)
    for index, weight in class_weight.items():
        table[index] = weight
    weights = table[labels]
    if data.sample_weight is not None:
        weights = weights * data.sample_weight
    return Dataset(data.inputs, data.targets, weights.astype(np.float32), data.sources)


def _pick(headers: dict, model_names, mapping, section: str, what: str, file: str, report: _Report) -> dict:
    """{model name: (array name, header)} of the arrays found; a missing one reported."""
    picked = {}
    for name in model_names:
        array_name = (mapping or {}).get(name, name)
        if array_name in headers:
            picked[name] = (array_name, headers[array_name])
            continue
        have = ", ".join(sorted(headers)) or "none"
        hint = did_you_mean(array_name, headers)
        mapped = (section, name) if mapping and name in mapping else ()
        tip = "" if mapped else f"; map it with `{section}: {{{name}: ARRAY}}`"
        report.add(file, f"no array '{array_name}' for {what} '{name}'{hint} (arrays: {have}){tip}", mapped)
    return picked


def _input_shape_problem(shape: tuple, name: str, need: tuple) -> str:
    return "" if shape[1:] == need else f"has shape {shape}; input '{name}' needs {show_rows(need)}"


def _dtype_problem(dtype: np.dtype, input_dtype: str) -> str:
    """Why an array of `dtype` cannot feed an input of `input_dtype` ('' when it can, values permitting)."""
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


def show_rows(shape: tuple) -> str:
    return "(" + ", ".join(["rows", *map(str, shape)]) + ")"


def split(data: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """Keras' validation_split: the last `fraction` of the rows, taken before any shuffling."""
    cut = data.rows - int(round(data.rows * fraction))
    return data.between(0, cut), data.between(cut, data.rows)
