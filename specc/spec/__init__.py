"""Reading and validating spec files: text in, a validated `Spec` and its `SourceMap` out."""
from __future__ import annotations

import copy
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ValidationError

from ..errors import KeyPath, Problem, SpecError, did_you_mean, listed
from ..io.files import FileProblem, open_regular
from ..layers import LAYERS
from ..registry import Registry
from ..train.schedules import SCHEDULES
from .format import KEY_ORDER, Spec, names
from .source import MAX_SPEC_BYTES, SourceMap, read_document

__all__ = ["Spec", "SourceMap", "load_spec", "looks_like_spec", "names", "render"]


def load_spec(path: str | Path) -> tuple[Spec, SourceMap]:
    data, source = read_document(path)
    if not isinstance(data, dict):
        raise SpecError([source.locate(Problem(f"a spec is a mapping that starts with 'specc: 1', "
                                               f"got {_kind(data)}"))])
    try:
        return Spec.model_validate(data), source
    except ValidationError as e:
        raise SpecError(_explain(e, data, source), stand_in=_stand_in(data, e, source)) from None


_SPEC_KEY = re.compile(rb"^specc[ \t]*:|[\"']specc[\"'][ \t]*:", re.MULTILINE)


def looks_like_spec(path: str | Path) -> bool:
    """Whether a file is meant as a spec: it has a `specc:` key, at the top level of a YAML block mapping or
    quoted (JSON). Told from the text, so that a spec too broken to parse is still checked; an unreadable file
    is checked too, for its problem to be said."""
    try:
        with open_regular(path, "a spec file", MAX_SPEC_BYTES) as f:
            return bool(_SPEC_KEY.search(f.read(MAX_SPEC_BYTES)))
    except (FileProblem, OSError):
        return True


@dataclass
class StandIn:
    """A valid spec in place of a broken one: each broken part replaced by something harmless, so that the
    compiler can still find the problems of the whole parts (an unknown tensor, a cycle) in the same run."""
    spec: Spec
    source: SourceMap
    broken: list[KeyPath]  # problems found under these paths are the broken parts' own: already reported


_SPARE_SECTIONS = {"compile": {"optimizer": "sgd", "loss": "mse"}, "name": "stand_in"}  # others are dropped


def _stand_in(data: dict, error: ValidationError, source: SourceMap) -> Optional[StandIn]:
    whole, broken = copy.deepcopy(data), []
    for err in error.errors():
        path, _, _ = _walk(err["loc"], data)
        graph, at = ((), path) if path[:1] != ("models",) else (path[:2], path[2:])
        section = _walk(graph, whole)[1] if graph else whole
        if not isinstance(section, dict) or not at:
            return None
        if at[0] in ("layers", "inputs") and len(at) > 1 and isinstance(section.get(at[0]), dict):
            entry = graph + at[:2]
            if entry not in broken:
                broken.append(entry)
                stand_in = {"shape": [1]} if at[0] == "inputs" else _stand_in_layer(section[at[0]][at[1]], section)
                if stand_in is None:
                    return None
                section[at[0]][at[1]] = stand_in
        elif not graph and at[0] in ("compile", "name", "data", "fit", "seed"):
            broken.append(at[:1])
            if at[0] in _SPARE_SECTIONS:
                whole[at[0]] = _SPARE_SECTIONS[at[0]]
            else:
                whole.pop(at[0], None)
        else:
            return None
    try:
        return StandIn(Spec.model_validate(whole), source, broken)
    except ValidationError:
        return None


def _stand_in_layer(entry, graph: dict) -> Optional[dict]:
    """An identity layer on the entry's inputs, or on any input of its graph when they are broken too (only
    names are checked past a broken part, never shapes)."""
    inputs = entry.get("inputs") if isinstance(entry, dict) else None
    names_ok = isinstance(inputs, str) or (isinstance(inputs, list) and inputs
                                           and all(isinstance(i, str) for i in inputs))
    if not names_ok:
        graph_inputs = graph.get("inputs")
        if not isinstance(graph_inputs, dict) or not graph_inputs:
            return None
        inputs = next(iter(graph_inputs))
    return {"type": "Activation", "activation": "linear", "inputs": inputs}


def render(spec: Spec) -> dict:
    """The spec as plain data with every default filled in, keys in the documented order."""
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped.pop("trainable", None)
    if "class_weight" in dumped.get("fit", {}):  # JSON mode made its class indices strings
        dumped["fit"]["class_weight"] = {int(k): v for k, v in dumped["fit"]["class_weight"].items()}
    return {key: dumped[key] for key in KEY_ORDER if key in dumped}


def _walk(loc: tuple, data) -> tuple[tuple, object, object]:
    """Map a pydantic error location onto keys of the document, dropping union tags pydantic adds.

    Returns (key path, the value at that path, the mapping holding it)."""
    path, node, parent = [], data, None
    for part in loc:
        if (isinstance(node, dict) and part in node) or \
                (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            path.append(part)
            parent, node = node, node[part]
    return tuple(path), node, parent


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing (null)"}.get(type(value), type(value).__name__)


def _fields_of(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model class a location ends in, from the union tag pydantic put in the location."""
    from . import format as F
    by_tag: dict[str, type[BaseModel]] = {
        **dict(LAYERS.items()), **dict(F.OPTIMIZERS.items()), **dict(SCHEDULES.items()), **dict(F.CALLBACKS.items()),
        "call": F.Call, "graph": F.GraphModel, "sequential": F.SequentialModel, "from": F.ImportedModel}
    if loc[:2] in (("compile", "loss"), ("compile", "metrics")):  # losses and metrics share names (mse)
        by_tag = dict((F.LOSSES if loc[1] == "loss" else F.METRICS).items())
    model: type[BaseModel] | None = F.Spec
    for part in loc:
        if isinstance(part, str) and part in by_tag:
            model = by_tag[part]
        elif model is not None and part in model.model_fields:
            inner = _models_in(model.model_fields[part].annotation)
            model = inner[0] if len(inner) == 1 else None  # a union is resolved by its tag, next in loc
    return model


def _models_in(annotation) -> list[type[BaseModel]]:
    """The model classes an annotation holds: itself, or those inside Optional, Union, list or dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _explain(error: ValidationError, data, source: SourceMap) -> list[Problem]:
    problems: dict[tuple, Problem] = {}
    for err in error.errors():
        kind, loc, value = err["type"], err["loc"], err.get("input")
        path, node, parent = _walk(loc, data)
        slot, at_key = None, False
        if kind == "extra_forbidden":
            key = path[-1]
            allowed = [f for f in _fields_of(_model_at(loc[:-1])) if f not in ("type",)]
            message = f"unknown key '{key}'{did_you_mean(key, allowed)}"
            if allowed:
                message += f"; allowed here: {', '.join(allowed)}"
            at_key = True
        elif kind == "missing":
            message = f"missing required key '{loc[-1]}'"
            slot, at_key = path + (f"missing {loc[-1]}",), True
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            message, at_key, path = _explain_tag(node, path)
        elif kind == "literal_error":
            expected = err["ctx"]["expected"]
            choices = _quoted(expected) or re.split(r", | or ", expected)
            if path == ("specc",):
                message = f"unsupported format version {value!r}; this specc reads `specc: {expected}`"
            elif isinstance(value, (dict, list)):  # a union's name branch, beside errors inside the container
                message = f"expected one of {listed(choices)}, got {_kind(value)}"
            else:
                message = f"'{value}' is not one of: {listed(choices)}{did_you_mean(value, choices)}"
        elif kind in EXPECTED:
            message = f"expected {EXPECTED[kind]}, got {_kind(value)}"
            if not isinstance(value, (dict, list)):
                message += f" {value!r}"
        elif kind == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        else:
            message = err["msg"][0].lower() + err["msg"][1:]
            if not isinstance(value, (dict, list)):
                message += f", got {value!r}"
        at_key = at_key or "[key]" in loc  # a mapping's key failed, not its value
        slot = slot or path
        if slot in problems and not at_key:
            problems[slot].message = _merge(problems[slot].message, message)
            continue
        problems[slot] = source.locate(Problem(message, path), at_key=at_key)
    # a union branch that failed on the container is noise beside the error inside it
    deeper = {path[:i] for path in problems for i in range(len(path))}
    # `unitz: 8` is one mistake: the unknown key's suggestion already names the missing one
    suggested = {slot[:-1] + (f"missing {hint[1]}",) for slot, p in problems.items()
                 if p.message.startswith("unknown key") and (hint := re.search(r"did you mean '([^']+)'", p.message))}
    kept = [p for slot, p in problems.items()
            if not (slot in deeper and p.message.startswith("expected")) and slot not in suggested]
    return sorted(kept, key=lambda p: (p.line or 0, p.column or 0))


EXPECTED = {"dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
            "list_type": "a list", "string_type": "a string", "int_type": "an integer",
            "float_type": "a number", "bool_type": "true or false"}


def _merge(first: str, second: str) -> str:
    """One message for a value that failed every branch of a union ("expected a string or a list")."""
    a, b = re.match(r"expected (.*?), got (.*)", first), re.match(r"expected (.*?), got (.*)", second)
    if a and b:
        return f"expected {a[1]} or {b[1]}, got {a[2]}"
    if a or b:  # one branch failed on the kind of value, the other on the value itself: that one says more
        return second if a else first
    return first if second in first else f"{first}; or {second}"


def _explain_tag(node, path) -> tuple[str, bool, tuple]:
    """Messages for a missing or unknown `type:` (of a layer, an optimizer or a callback)."""
    from .format import CALLBACKS, LOSSES, METRICS, OPTIMIZERS
    compile_parts: dict[str, Registry] = {"loss": LOSSES, "metrics": METRICS, "optimizer": OPTIMIZERS}
    registry: Registry = (SCHEDULES if path[2:3] == ("learning_rate",)
                          else compile_parts.get(path[1], OPTIMIZERS) if path[:1] == ("compile",) and path[1:]
                          else CALLBACKS if path[:2] == ("fit", "callbacks") else LAYERS)
    choices, what = registry.names(), registry.family
    tag: object  # as the spec gives it: not always a string
    if isinstance(node, str):  # an optimizer or a callback given by name
        tag = node
    elif isinstance(node, dict):
        tag = node.get("type")
        path = path + ("type",) if tag is not None else path
    else:
        return f"expected a {what.split()[0]} name or a mapping with `type:`, got {_kind(node)}", False, path
    if tag is None:
        hint = " or `call:` (to call a layer or model defined elsewhere)" if registry is LAYERS else ""
        return f"missing `type:` (one of {listed(choices)}){hint}", True, path
    return registry.unknown(str(tag)), False, path
