"""`specc diff`: what changed between two specs, as a reviewer asks it: layers added, removed, renamed or changed
(which arguments, old -> new; their wiring), inputs, outputs, compile, data and fit settings, and the parameters
each layer change adds or removes.

Specs are compared as `specc render` gives them, every default filled in: key order, comments, flow or block
style, and a default written out or left implicit are no differences. Parameter counts come from the compiled
graphs, so both specs must be valid."""
from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import click

from .errors import SpecError
from .graph import Graph
from .spec import Spec, render
from .spec.format import names


class _Absent:
    """The value of a key one side does not have."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


@dataclass
class Change:
    key: str  # dotted key path in the spec
    old: object
    new: object


@dataclass
class LayerChange:
    kind: str  # added, removed, renamed, changed, or reshaped (the same entry on inputs of another shape)
    name: str  # its name in the new spec (in the old one for a removed layer)
    type: str
    old_name: Optional[str] = None  # for a renamed layer
    arguments: list[Change] = field(default_factory=list)  # changed arguments, its inputs aside
    inputs: Optional[tuple[list[str], list[str]]] = None  # wiring before -> after, when it changed
    params: tuple[Optional[int], Optional[int]] = (None, None)  # before, after (None: not there, or shared)


@dataclass
class SpecDiff:
    old: str
    new: str
    layers: list[LayerChange]
    changes: list[Change]  # everything but the top-level layers: inputs, outputs, compile, data, fit, models...
    params: tuple[int, int]

    @property
    def equal(self) -> bool:
        return not self.layers and not self.changes


# -- computing -----------------------------------------------------------------------------------------------------

def diff_specs(old: tuple[str, Spec, Graph], new: tuple[str, Spec, Graph]) -> SpecDiff:
    """The differences between two compiled specs, each given as (label, Spec, Graph)."""
    (old_label, old_spec, old_graph), (new_label, new_spec, new_graph) = old, new
    before, after = render(old_spec), render(new_spec)
    renames = _renames(before.get("layers", {}), after.get("layers", {}))
    before = _renamed(before, renames)
    old_layers, new_layers = before.pop("layers", {}), after.pop("layers", {})
    old_names = {new: old for old, new in renames.items()}

    def params(graph: Graph, name: str) -> Optional[int]:
        layer = graph.layers.get(name)
        return layer.count_params() if layer is not None and layer.name == name else None

    layers = []
    for name, entry in new_layers.items():
        if name not in old_layers:
            layers.append(LayerChange("added", name, _type(entry), params=(None, params(new_graph, name))))
            continue
        old_name = old_names.get(name, name)
        counts = (params(old_graph, old_name), params(new_graph, name))
        old_entry = old_layers[name]
        arguments = changes(_arguments(old_entry), _arguments(entry), "")
        wiring = (names(old_entry.get("inputs")), names(entry.get("inputs")))
        inputs = wiring if wiring[0] != wiring[1] else None
        if name in old_names:  # only renamed: the same entry on the same tensors
            layers.append(LayerChange("renamed", name, _type(entry), old_name, params=counts))
        elif arguments or inputs:
            layers.append(LayerChange("changed", name, _type(entry), None, arguments, inputs, counts))
        elif counts[0] != counts[1]:  # the same entry on inputs of another shape: its weights do not carry over
            layers.append(LayerChange("reshaped", name, _type(entry), params=counts))
    for name, entry in old_layers.items():
        if name not in new_layers:
            layers.append(LayerChange("removed", name, _type(entry), params=(params(old_graph, name), None)))
    return SpecDiff(old_label, new_label, layers, changes(before, after, ""),
                    (old_graph.count_params(), new_graph.count_params()))


def changes(old, new, prefix: str) -> list[Change]:
    """The values that differ, by dotted key: mappings key by key; lists, and mappings whose `type:` differs
    (another optimizer), as a whole."""
    if isinstance(old, dict) and isinstance(new, dict) and old.get("type") == new.get("type"):
        found = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += changes(old.get(key, ABSENT), new.get(key, ABSENT), f"{prefix}.{key}" if prefix else str(key))
        return found
    return [] if old == new else [Change(prefix, old, new)]


def _type(entry: dict) -> str:
    return entry["type"] if "type" in entry else f"call {entry.get('call')}"


def _arguments(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key != "inputs"}


def _renames(old_layers: dict, new_layers: dict) -> dict[str, str]:
    """Old name -> new name of the layers only renamed: same type and arguments, same inputs (once the layers
    they read are renamed too)."""
    renames: dict[str, str] = {}
    gone = [name for name in old_layers if name not in new_layers]
    came = [name for name in new_layers if name not in old_layers]
    found = True
    while found:  # a renamed layer may read another renamed layer listed after it
        found = False
        for new_name in came:
            for old_name in gone:
                old, new = old_layers[old_name], new_layers[new_name]
                if old_name not in renames and new_name not in renames.values() \
                        and _arguments(old) == _arguments(new) \
                        and [_rename(t, renames) for t in names(old.get("inputs"))] == names(new.get("inputs")):
                    renames[old_name] = new_name
                    found = True
                    break
    return renames


def _rename(tensor: str, renames: dict[str, str]) -> str:
    """A tensor name after the renames (`NAME.1` selects an output of NAME)."""
    base, dot, output = tensor.partition(".")
    return renames.get(base, base) + dot + output


def _renamed(spec: dict, renames: dict[str, str]) -> dict:
    """The rendered spec with its layers renamed, wherever their names are used."""
    if not renames:
        return spec
    out = dict(spec)
    out["layers"] = {_rename(name, renames): {**entry, **({"inputs": _rename_all(entry["inputs"], renames)}
                                                          if "inputs" in entry else {})}
                     for name, entry in spec.get("layers", {}).items()}
    out["outputs"] = _rename_all(spec["outputs"], renames)
    compile_ = out["compile"] = dict(spec["compile"])
    for key in ("loss", "loss_weights", "metrics"):
        if isinstance(compile_.get(key), dict):
            compile_[key] = {_rename(k, renames): v for k, v in compile_[key].items()}
    if "data" in spec:
        data = out["data"] = dict(spec["data"])
        for part in ("train", "validation"):
            if isinstance(data.get(part), dict) and isinstance(data[part].get("targets"), dict):
                data[part] = {**data[part], "targets": {_rename(k, renames): v
                                                        for k, v in data[part]["targets"].items()}}
    return out


def _rename_all(value, renames: dict[str, str]):
    return _rename(value, renames) if isinstance(value, str) else [_rename(t, renames) for t in value]


# -- reading either side -------------------------------------------------------------------------------------------

class SourceError(Exception):
    """A side of the diff that cannot be had (a revision or path git does not know)."""


@contextlib.contextmanager
def spec_file(argument: str) -> Iterator[tuple[Path, str]]:
    """(path to read, label to show) for a file, or for `REV:path` the file as it is in that git revision of the
    repository of the current folder (`git show REV:path`, run without a shell, written to a temporary folder)."""
    rev, colon, path = argument.partition(":")
    if Path(argument).exists() or not colon or not rev or not path:
        yield Path(argument), argument
        return
    if rev.startswith("-"):  # would be read as an option of git
        raise SourceError(f"'{argument}': a revision does not start with '-'")
    try:
        shown = subprocess.run(["git", "show", "--no-textconv", "--end-of-options", f"{rev}:{path}"],
                               capture_output=True, check=False)
    except FileNotFoundError:
        raise SourceError(f"'{argument}' reads a file from git, which is not installed") from None
    if shown.returncode != 0:
        said = shown.stderr.decode(errors="replace").strip().removeprefix("fatal: ")
        raise SourceError(f"'{argument}': git cannot show it ({said})")
    with tempfile.TemporaryDirectory(prefix="specc-diff-") as folder:
        copy = Path(folder) / Path(path).name
        copy.write_bytes(shown.stdout)
        try:
            yield copy, argument
        except SpecError as e:  # its problems are said of REV:path, not of the temporary copy
            for problem in e.problems:
                if problem.file == str(copy):
                    problem.file = argument
            raise


# -- showing -------------------------------------------------------------------------------------------------------

def show(value) -> str:
    """A value as a spec would write it, on one line (YAML flow style)."""
    if value is ABSENT:
        return "(none)"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, dict) and list(value) == ["type"]:  # a bare name says the same
        return show(value["type"])
    if isinstance(value, dict):  # its type first, as specs are written
        ordered = sorted(value.items(), key=lambda item: item[0] != "type")
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in ordered) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def _count(n: Optional[int]) -> str:
    return "-" if n is None else f"{n:,}"


def _params(change: LayerChange) -> str:
    before, after = change.params
    if change.kind == "added":
        return _count(after)
    if change.kind == "removed" or before == after:
        return _count(before)
    return f"{_count(before)} -> {_count(after)}"


def _total(diff: SpecDiff) -> str:
    before, after = diff.params
    return f"{before:,} -> {after:,} ({after - before:+,})" if before != after else f"{before:,} (unchanged)"


def _what(change: LayerChange) -> list[str]:
    """What changed in a changed layer, one line each."""
    if change.kind == "reshaped":
        return ["its inputs' shapes changed"]
    lines = [f"{c.key}: {show(c.old)} -> {show(c.new)}" for c in change.arguments]
    if change.inputs is not None:
        lines.append(f"inputs: {show(change.inputs[0])} -> {show(change.inputs[1])}")
    return lines


def _title(change: LayerChange) -> str:
    return f"{change.old_name} -> {change.name}" if change.kind == "renamed" else change.name


_MARK = {"added": ("+", "green"), "removed": ("-", "red"), "renamed": (">", "cyan"), "changed": ("~", "yellow"),
         "reshaped": ("~", "yellow")}


def as_text(diff: SpecDiff) -> str:
    """For people: one line per layer change with what changed beneath it, then the other settings; coloured
    (click leaves the colours out when the output is not a terminal)."""
    if diff.equal:
        return ""
    lines = [click.style(f"--- {diff.old}", fg="red"), click.style(f"+++ {diff.new}", fg="green")]
    if diff.layers:
        lines.append(click.style("layers", bold=True))
    for change in diff.layers:
        mark, colour = _MARK[change.kind]
        lines.append(click.style(f"  {mark} {_title(change)} ({change.type}): {change.kind}, params "
                                 f"{_params(change)}", fg=colour))
        lines += [f"      {line}" for line in _what(change)]
    if diff.changes:
        lines.append(click.style("settings", bold=True))
    for c in diff.changes:
        mark, colour = _MARK["added" if c.old is ABSENT else "removed" if c.new is ABSENT else "changed"]
        lines.append(click.style(f"  {mark} {c.key}: {show(c.old)} -> {show(c.new)}", fg=colour))
    lines.append(click.style(f"params: {_total(diff)}", bold=True))
    return "\n".join(lines) + "\n"


def _plain(value):
    return None if value is ABSENT else value


def as_json(diff: SpecDiff) -> str:
    """For tools: a key's absent side is null."""
    def change(c: Change) -> dict:
        return {"key": c.key, "old": _plain(c.old), "new": _plain(c.new)}
    layers = [{"change": c.kind, "name": c.name, "old_name": c.old_name, "type": c.type,
               "arguments": [change(a) for a in c.arguments],
               "inputs": None if c.inputs is None else {"old": c.inputs[0], "new": c.inputs[1]},
               "params": {"old": c.params[0], "new": c.params[1]}} for c in diff.layers]
    return json.dumps({"old": diff.old, "new": diff.new, "equal": diff.equal, "layers": layers,
                       "changes": [change(c) for c in diff.changes],
                       "params": {"old": diff.params[0], "new": diff.params[1]}}, indent=2) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(diff: SpecDiff) -> str:
    """For a pull-request comment: a table of layer changes, a table of the other settings, the totals."""
    head = f"**specc diff** `{_cell(diff.old)}` → `{_cell(diff.new)}`"
    if diff.equal:
        return f"{head}: no differences\n"
    out = [f"{head}: parameters {_total(diff).replace('->', '→')}", ""]
    if diff.layers:
        out += ["| layer | type | change | params |", "|---|---|---|---|"]
        for c in diff.layers:
            name = f"`{c.old_name}` → `{c.name}`" if c.kind == "renamed" else f"`{c.name}`"
            what = "<br>".join(_cell(line).replace(" -> ", " → ") for line in _what(c)) or c.kind
            out.append(f"| {name} | {c.type} | {what} | {_params(c).replace(' -> ', ' → ')} |")
        out.append("")
    if diff.changes:
        out += ["| setting | old | new |", "|---|---|---|"]
        out += [f"| `{c.key}` | {_cell(show(c.old))} | {_cell(show(c.new))} |" for c in diff.changes]
        out.append("")
    return "\n".join(out)


FORMATS = {"text": as_text, "json": as_json, "markdown": as_markdown}
