"""Reading a spec file into plain data while remembering where every key and value came from."""
from __future__ import annotations

import codecs
import contextlib
import gc
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..errors import KeyPath, Problem, SpecError
from ..io.files import FileProblem, open_regular

MAX_SPEC_BYTES = 64 * 2 ** 20  # a spec of 150,000 layers takes 9 MiB


@dataclass
class SourceMap:
    """Line and column (1-based) of every key and value, by key path."""
    file: str
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, problem: Problem, at_key: bool = False) -> Problem:
        """Fill in the problem's file and position from its path (the nearest known ancestor if needed)."""
        path = tuple(problem.path)
        while path and path not in self.values:
            path = path[:-1]
        table = self.keys if (at_key or problem.at_key) and path in self.keys else self.values
        line, column = table.get(path, (1, 1))
        problem.file, problem.line, problem.column = self.file, line, column
        return problem


class _Loader(yaml.SafeLoader):
    """Safe loading, plus YAML 1.2 exponent floats (`1e-3`, `2.5e3`), which YAML 1.1 reads as strings."""


# libyaml parses ten times faster than PyYAML's own parser; from 0.2.5 it refuses nesting too deep to compose
_FastLoader: Optional[type[yaml.CSafeLoader]] = None
if getattr(yaml, "__with_libyaml__", False) and yaml._yaml.get_version() >= (0, 2, 5):
    class _LibyamlLoader(yaml.CSafeLoader):
        """_Loader's rules, parsed by libyaml."""
    _FastLoader = _LibyamlLoader

# both are yaml Resolvers, the class that holds the implicit-tag rules add_implicit_resolver extends
_loaders: list[type[yaml.resolver.Resolver]] = [_Loader] if _FastLoader is None else [_Loader, _FastLoader]
for _loader in _loaders:
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"), list("-+.0123456789"))

_STR, _MERGE, _VALUE = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"
_PLAIN_TAGS = {yaml.MappingNode: {"tag:yaml.org,2002:map"}, yaml.SequenceNode: {"tag:yaml.org,2002:seq"},
               yaml.ScalarNode: {f"tag:yaml.org,2002:{t}" for t in
                                 ("null", "bool", "int", "float", "str", "timestamp", "binary")}}


def _show_tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _mark(node_or_mark) -> tuple[int, int]:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1, mark.column + 1


class _TooManyValues(Exception):
    """Aliases (`*name`) that expand a small file into a huge document (the 'billion laughs'), told from a large
    document by the values reached through aliases: a document without aliases is no larger than its text."""

    def __init__(self, path: KeyPath):
        super().__init__(path)
        self.path = path


class _Reader:
    def __init__(self, source: SourceMap):
        self.source = source
        self.problems: list[Problem] = []
        self.converted: set[int] = set()  # ids of the nodes converted: meeting one again is through an alias
        self.aliased = 0  # values converted again, through aliases
        self.constructor = yaml.SafeLoader("")  # only for its safe scalar construction
        self.merged: dict[int, int] = {}  # id of a flattened mapping node -> how many pairs came from `<<`

    def convert(self, node: yaml.Node, path: KeyPath):
        if id(node) not in self.converted:
            self.converted.add(id(node))
        else:
            self.aliased += 1
            if self.aliased > MAX_VALUES:
                raise _TooManyValues(path)
        self.source.values[path] = _mark(node)
        if len(path) >= MAX_DEPTH and isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            self.problems.append(Problem(TOO_DEEP, (), self.source.file, *_mark(node)))
            return None
        if node.tag not in _PLAIN_TAGS[type(node)]:  # e.g. !!python/object: refused, never constructed
            self.problems.append(Problem(
                f"YAML tag '{_show_tag(node.tag)}' is not allowed; a spec holds plain data only "
                "(mappings, lists, strings, numbers, booleans)", path, self.source.file, *_mark(node)))
            return None
        if isinstance(node, yaml.MappingNode):
            if id(node) not in self.merged:  # YAML merge keys (<<): merged pairs first, then the node's own
                own = len(node.value)
                if any(key.tag in (_MERGE, _VALUE) for key, _ in node.value):  # (`=` keys become strings)
                    own = sum(key.tag != _MERGE for key, _ in node.value)
                    self.constructor.flatten_mapping(node)
                self.merged[id(node)] = len(node.value) - own
            merged = self.merged[id(node)]
            out, own_keys = {}, set()
            for i, (key_node, value_node) in enumerate(node.value):
                key = self.scalar(key_node, path)
                at = path + (key,)
                own = i >= merged  # a merged key may be overridden by the node's own, as in YAML
                if own and key in own_keys:
                    first_line, _ = self.source.keys[at]
                    self.problems.append(Problem(
                        f"duplicate key '{key}' (first given on line {first_line}); "
                        "a mapping may name each key once", at, self.source.file, *_mark(key_node)))
                    continue
                if own:
                    own_keys.add(key)
                self.source.keys[at] = _mark(key_node)
                out[key] = self.convert(value_node, at)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.value(node)

    def value(self, node: yaml.ScalarNode):
        """A scalar's value, by the safe constructor of its tag (called directly: most are strings, and a spec
        may have a million scalars); any other tag is left to construct_object, which refuses it."""
        if node.tag == _STR:
            return node.value
        if node.tag in _PLAIN_TAGS[yaml.ScalarNode]:
            return self.constructor.yaml_constructors[node.tag](self.constructor, node)
        return self.constructor.construct_object(node)

    def scalar(self, node: yaml.Node, path: KeyPath):
        if not isinstance(node, yaml.ScalarNode):
            self.problems.append(Problem("a key must be a plain name, not a list or mapping", path,
                                         self.source.file, *_mark(node)))
            return f"<key at line {_mark(node)[0]}>"
        key = self.value(node)
        return key if isinstance(key, (str, int)) else str(key)


MAX_DEPTH = 100  # a spec nests a handful of levels; deeper documents are refused, with the place
TOO_DEEP = f"lists and mappings nested more than {MAX_DEPTH} levels deep; a spec needs only a few"
MAX_VALUES = 200_000  # values reached through aliases: a spec needs a few hundred; a 'billion laughs' far more


def _too_deep(name: str, text: str) -> SpecError:
    """For a document nested deeper than the parsers can recurse: the place where it passes MAX_DEPTH levels
    (found with the event parser, which does not recurse)."""
    depth, line, column = 0, 1, 1
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    line, column = _mark(event)
                    break
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass
    return SpecError([Problem(TOO_DEEP, (), name, line, column)])


def _read_text(path: Path) -> str:
    """The text of a spec file: a regular file of at most MAX_SPEC_BYTES, UTF-8 (a leading byte order mark, which
    some editors write, is dropped)."""
    name = str(path)
    try:
        with open_regular(path, "a spec file", MAX_SPEC_BYTES) as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except FileProblem as e:
        raise SpecError([Problem(message, (), name) for message in e.messages]) from None
    except OSError as e:
        raise SpecError([Problem(f"cannot read the file: {e.strerror or e}", (), name)]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError([Problem(f"grew past {MAX_SPEC_BYTES:,} bytes while it was read; a spec file may have at "
                                 f"most that", (), name)])
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, start) + 1
        column = len(data[start:e.start].decode("utf-8", errors="replace")) + 1
        raise SpecError([Problem(f"is not UTF-8 text ({e.reason}, at byte 0x{data[e.start]:02x}); save it as "
                                 "UTF-8", (), name, line, column)]) from None


@contextlib.contextmanager
def _collector_paused():
    """Python's cycle collector, set off by every few hundred new objects, walks all the nodes made so far each
    time: reading a spec of a million values took three times as long with it. Whatever cycles reading leaves
    are collected once it runs again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compose(text: str) -> yaml.Node:
    """The document's node tree, by libyaml where it is there; by PyYAML's own parser otherwise, and for a text
    libyaml refuses, for PyYAML's messages and positions."""
    if _FastLoader is not None:
        try:
            return yaml.compose(text, Loader=_FastLoader)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=_Loader)


def read_document(path: str | Path) -> tuple[object, SourceMap]:
    """Parse a YAML or JSON file safely; raise SpecError with positions for syntax errors and duplicate keys."""
    path = Path(path)
    text = _read_text(path)
    with _collector_paused():
        return _parse(text, path)


def _parse(text: str, path: Path) -> tuple[object, SourceMap]:
    name = str(path)
    json_data = None
    if path.suffix.lower() == ".json":
        try:
            json_data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError([Problem(f"invalid JSON: {e.msg}", (), name, e.lineno, e.colno)]) from None
        except RecursionError:
            raise _too_deep(name, text.replace("\t", " ")) from None
        # Positions come from the YAML parser, which rejects tabs as indentation; in valid JSON a tab can
        # only be whitespace between tokens, so a space in its place keeps every line and column.
        text = text.replace("\t", " ")
    source = SourceMap(name)
    line: Optional[int]  # of a problem: None where the parser does not say
    column: Optional[int]
    try:
        root = _compose(text)
    except yaml.reader.ReaderError as e:  # a character YAML does not allow anywhere, such as a control character
        index = max(0, min(e.position, len(text)))
        line, column = text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1
        character = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise SpecError([Problem(f"invalid YAML: unacceptable character {character}: {e.reason}", (), name,
                                 line, column)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(p for p in (e.context, e.problem) if p)
        line, column = (_mark(mark) if mark else (None, None))
        raise SpecError([Problem(f"invalid YAML: {what}", (), name, line, column)]) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem(f"invalid YAML: {e}", (), name)]) from None
    except RecursionError:
        raise _too_deep(name, text) from None
    if root is None:
        raise SpecError([Problem("the file is empty; a spec starts with 'specc: 1'", (), name, 1, 1)])
    reader = _Reader(source)
    try:
        data = reader.convert(root, ())
    except RecursionError:
        raise _too_deep(name, text) from None
    except _TooManyValues as e:  # said at the key whose value the aliases were expanding
        where = next((e.path[:i] for i in range(len(e.path), 0, -1) if e.path[:i] in source.keys), ())
        raise SpecError([source.locate(Problem(
            f"YAML aliases (*name) expand this document to more than {MAX_VALUES:,} values; a spec needs "
            "a few hundred", where), at_key=True)]) from None
    except yaml.YAMLError as e:  # e.g. an unknown tag: safe loading refuses to build objects
        mark = getattr(e, "problem_mark", None)
        line, column = (_mark(mark) if mark else (None, None))
        raise SpecError([Problem(f"invalid YAML: {getattr(e, 'problem', e)}", (), name, line, column)]) from None
    if reader.problems:
        raise SpecError(reader.problems)
    if json_data is not None:
        data = json_data  # the same structure, with JSON's own scalar rules (YAML 1.1 differs on a few)
    return data, source
