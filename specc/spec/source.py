"""Reading a spec file into plain data while remembering where every key and value came from."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import KeyPath, Problem, SpecError


@dataclass
class SourceMap:
    """Line and column (1-based) of every key and value, by key path."""
    file: str
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, problem: Problem, at_key: bool = False) -> Problem:
        """Fill in the problem's file and position from its path (the nearest known ancestor if needed)."""
        path = tuple(problem.path)
        while path:
            table = self.keys if (at_key and path in self.keys) else self.values
            if path in table:
                break
            path = path[:-1]
        line, column = (self.keys if at_key and path in self.keys else self.values).get(path, (1, 1))
        problem.file, problem.line, problem.column = self.file, line, column
        return problem


def _mark(node_or_mark) -> tuple[int, int]:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1, mark.column + 1


class _Reader:
    def __init__(self, source: SourceMap):
        self.source = source
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")  # only for its safe scalar construction

    def convert(self, node: yaml.Node, path: KeyPath):
        self.source.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<)
            out = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node, path)
                if key in out:
                    first_line, _ = self.source.keys[path + (key,)]
                    self.problems.append(Problem(
                        f"duplicate key '{key}' (first given on line {first_line}); "
                        "a mapping may name each key once", path + (key,), self.source.file,
                        *_mark(key_node)))
                    continue
                self.source.keys[path + (key,)] = _mark(key_node)
                out[key] = self.convert(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)

    def scalar(self, node: yaml.Node, path: KeyPath):
        if not isinstance(node, yaml.ScalarNode):
            self.problems.append(Problem("a key must be a plain name, not a list or mapping", path,
                                         self.source.file, *_mark(node)))
            return f"<key at line {_mark(node)[0]}>"
        key = self.constructor.construct_object(node)
        return key if isinstance(key, (str, int)) else str(key)


def read_document(path: str | Path) -> tuple[object, SourceMap]:
    """Parse a YAML or JSON file safely; raise SpecError with positions for syntax errors and duplicate keys."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("no such file", (), name)]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([Problem(f"cannot read the file: {e}", (), name)]) from None
    if path.suffix.lower() == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError([Problem(f"invalid JSON: {e.msg}", (), name, e.lineno, e.colno)]) from None
    source = SourceMap(name)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(p for p in (e.context, e.problem) if p)
        line, column = (_mark(mark) if mark else (None, None))
        raise SpecError([Problem(f"invalid YAML: {what}", (), name, line, column)]) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem(f"invalid YAML: {e}", (), name)]) from None
    if root is None:
        raise SpecError([Problem("the file is empty; a spec starts with 'specc: 1'", (), name, 1, 1)])
    reader = _Reader(source)
    try:
        data = reader.convert(root, ())
    except yaml.YAMLError as e:  # e.g. an unknown tag: safe loading refuses to build objects
        mark = getattr(e, "problem_mark", None)
        line, column = (_mark(mark) if mark else (None, None))
        raise SpecError([Problem(f"invalid YAML: {getattr(e, 'problem', e)}", (), name, line, column)]) from None
    if reader.problems:
        raise SpecError(reader.problems)
    return data, source
