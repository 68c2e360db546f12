"""Fuzzing `specc validate` with mutated example specs: whatever the text, a verdict and located messages.

Every example spec in specs/ is mutated at the text level (lines deleted, duplicated, swapped, re-indented,
random characters inserted, one name put in the place of another, brackets nested hundreds deep, the file cut
short) and at the tree level (keys deleted, renamed to near misses or
added, values replaced by values of other kinds, list entries duplicated, inputs pointed at later layers to
make cycles, names swapped between calls, models imported from other specs). For each mutant, `validate` run
in-process must end with exit status 0 or 1 and no other exception (which the executable would show as an
internal error), and on 1 every problem line must be located as `file:line:column: `.

The runs are reproducible (derandomize) and bounded (max_examples; one validation must take under 2 s).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import specc
from specc.cli import cli

ROOT = Path(__file__).parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
NAMES = [p.name for p in SPECS]
TEXTS = {p.name: p.read_text(encoding="utf-8") for p in SPECS}
LIMIT_SECONDS = 2.0
EXAMPLES = int(os.environ.get("SPECC_FUZZ_EXAMPLES", 400))  # more for a longer hunt, e.g. 3000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of specs/, so that mutants sit beside the specs they import (video_qa.yaml imports vqa.yaml)."""
    folder = tmp_path_factory.mktemp("fuzz") / "specs"
    folder.mkdir()
    for path in SPECS:
        shutil.copy(path, folder / path.name)
    return folder


def validate(path: Path) -> tuple[int, list[str]]:
    """`specc validate PATH` in-process: (exit status, lines printed to stderr). Any other exception escapes."""
    err = io.StringIO()
    code = None
    started = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main(args=["validate", str(path)], standalone_mode=False)
        except SystemExit as e:
            code = e.code
    elapsed = time.perf_counter() - started
    assert elapsed < LIMIT_SECONDS, f"validating took {elapsed:.1f} s"
    return code, err.getvalue().splitlines()


def check(path: Path, text: str):
    """The verdict and the messages on one mutant, through the command and through the library."""
    code, lines = validate(path)
    assert code in (0, 1), (code, lines, text)
    if code == 0:
        assert lines == [], lines
        specc.load(path)  # the library agrees
        return
    assert lines and re.fullmatch(r"\d+ problem\(s\) in 1 of 1 file\(s\)", lines[-1]), lines
    located = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): \S")
    for line in lines[:-1]:
        match = located.match(line)
        assert match, f"problem without a place: {line!r}\n--- mutant ---\n{text}"
        assert match["file"] == str(path) or Path(match["file"]).exists(), line
        assert 1 <= int(match["line"]) and 1 <= int(match["column"]), line
        longest = max(map(len, text.splitlines()), default=0)  # a message may quote a value of the text
        assert len(line) < 500 + 3 * longest, f"a message no one can read: {line[:300]!r}..."
    with pytest.raises(specc.SpecError) as caught:
        specc.load(path)
    problems = caught.value.problems
    assert problems, "a SpecError without problems"
    assert len(lines) - 1 == len(problems), (lines, [str(p) for p in problems])
    for problem in problems:
        assert problem.file is not None and problem.line is not None and problem.column is not None, str(problem)


# -- text mutations ---------------------------------------------------------------------------------------------

NOISE = st.text(alphabet=st.sampled_from(list(":{}[],-#&*!|>'\"%@`?~\t\n =.0123456789abcxyzé\\")) |
                st.characters(codec="utf-8"), min_size=1, max_size=8)


@st.composite
def text_mutant(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(NAMES))
    lines = TEXTS[name].split("\n")
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "indent", "dedent", "word",
                                     "nest", "truncate"]))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(NOISE) + lines[i][at:]
        elif kind == "nest":  # brackets nested deeper than any parser recurses
            at = draw(st.integers(0, len(lines[i])))
            depth = draw(st.sampled_from([1, 3, 99, 150, 600]))
            brackets = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
            lines[i] = lines[i][:at] + brackets[0] * depth + "1" + brackets[1] * depth + lines[i][at:]
        elif kind == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "    ", "\t"])) + lines[i]
        elif kind == "dedent":
            lines[i] = lines[i][draw(st.integers(1, 4)):]
        elif kind == "word":  # one name in the place of another: wrong references, cycles, duplicates
            words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", TEXTS[name])
            here = list(re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", lines[i]))
            if here:
                m = draw(st.sampled_from(here))
                lines[i] = lines[i][:m.start()] + draw(st.sampled_from(words)) + lines[i][m.end():]
        else:
            text = "\n".join(lines)
            lines = text[:draw(st.integers(0, len(text)))].split("\n")
    return name, "\n".join(lines)


@FUZZ
@given(text_mutant())
def test_text_mutants_get_a_verdict_and_located_messages(workdir, mutant):
    name, text = mutant
    path = workdir / f"text_{name}"
    path.write_text(text, encoding="utf-8")
    check(path, text)


# -- tree mutations ---------------------------------------------------------------------------------------------

OTHER_KINDS = [None, True, False, 0, -1, 1, 7, 2 ** 40, 1.5, -0.5, math.inf, math.nan, "", "x", "Dense",
               "relu", [], [1], [-3, 0], ["a", "b"], {}, {"a": 1}, {"shape": [2]}, {"type": "Dense"}]


def _places(node, path=()):
    """(container, key, path) for every value in the document."""
    if isinstance(node, dict):
        for key in list(node):
            yield node, key, path + (key,)
            yield from _places(node[key], path + (key,))
    elif isinstance(node, list):
        for i in range(len(node)):
            yield node, i, path + (i,)
            yield from _places(node[i], path + (i,))


def _layer_tables(node):
    """Every `layers:` mapping (the spec's and each sub-model's)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "layers" and isinstance(value, dict):
                yield value
            yield from _layer_tables(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layer_tables(value)


def _near_miss(draw, key) -> str:
    key = str(key)
    kind = draw(st.sampled_from(["drop", "double", "case", "swap", "suffix"]))
    i = draw(st.integers(0, max(len(key) - 1, 0)))
    if kind == "drop" and len(key) > 1:
        return key[:i] + key[i + 1:]
    if kind == "double" and key:
        return key[:i] + key[i] + key[i:]
    if kind == "case":
        return key.swapcase()
    if kind == "swap" and len(key) > 1 and i < len(key) - 1:
        return key[:i] + key[i + 1] + key[i] + key[i + 2:]
    return key + "s"


def _names(data) -> list[str]:
    found = set()
    for container, key, _ in _places(data):
        if isinstance(container, dict) and isinstance(key, str) and isinstance(container[key], dict):
            found.add(key)
    return sorted(found) or ["x"]


@st.composite
def tree_mutant(draw) -> tuple[str, object, str]:
    name = draw(st.sampled_from(NAMES))
    as_json = draw(st.booleans())
    itself = f"tree_{Path(name).stem}.json" if as_json else f"tree_{name}"  # the mutant's own file name
    data = yaml.safe_load(TEXTS[name])
    for _ in range(draw(st.integers(1, 3))):
        places = list(_places(data))
        kind = draw(st.sampled_from(["delete", "retype", "rename", "unknown", "duplicate", "cycle", "rewire",
                                     "import", "self_import", "shape"]))
        if kind == "cycle":  # an entry reads a later (or its own) entry
            tables = [t for t in _layer_tables(data) if t]
            if tables:
                table = draw(st.sampled_from(tables))
                keys = list(table)
                i = draw(st.integers(0, len(keys) - 1))
                later = draw(st.sampled_from(keys[i:]))
                if isinstance(table[keys[i]], dict):
                    table[keys[i]]["inputs"] = later if draw(st.booleans()) else [later, later]
            continue
        if kind == "rewire":  # `inputs`, `call`, `layer` or an output names something else of the spec
            targets = [(c, k) for c, k, _ in places if k in ("inputs", "call", "layer", "outputs")]
            if targets:
                container, key = draw(st.sampled_from(targets))
                container[key] = draw(st.sampled_from(_names(data)))
            continue
        if kind == "import":  # a sub-model from a spec of the folder (often this very one) or nowhere
            models = data.setdefault("models", {}) if isinstance(data, dict) else None
            if isinstance(models, dict):
                target = draw(st.sampled_from([*NAMES, itself, itself, itself, "missing.yaml", "../README.md",
                                               "data"]))
                entry = {"from": target}
                if draw(st.booleans()):
                    entry["model"] = draw(st.sampled_from(["vision_model", "question_encoder", "classifier",
                                                           "nope"]))
                model_name = draw(st.sampled_from([*list(models), "imported"]))
                models[model_name] = entry
            continue
        if kind == "self_import":  # a model of the spec becomes the spec itself: it would contain itself
            models = data.get("models") if isinstance(data, dict) else None
            tables = [t for t in _layer_tables(data) if t]
            if isinstance(models, dict) and models:
                models[draw(st.sampled_from(list(models)))] = {"from": itself}
            elif isinstance(data, dict) and tables:
                data["models"] = {"me": {"from": itself}}
                table = draw(st.sampled_from(tables))
                entry = draw(st.sampled_from(list(table)))
                inputs = table[entry].get("inputs", "x") if isinstance(table[entry], dict) else "x"
                table[entry] = {"call": "me", "inputs": inputs}
            continue
        if kind == "shape":
            shapes = [(c, k) for c, k, _ in places if k == "shape"]
            if shapes:
                container, key = draw(st.sampled_from(shapes))
                container[key] = draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3, 7, 10 ** 6]), max_size=5))
            continue
        if not places:
            break
        container, key, _ = draw(st.sampled_from(places))
        if kind == "delete":
            del container[key]
        elif kind == "retype":
            container[key] = copy.deepcopy(draw(st.sampled_from(OTHER_KINDS)))  # never share the pool's lists
        elif kind == "rename" and isinstance(container, dict):
            value = container.pop(key)
            container[_near_miss(draw, key)] = value
        elif kind == "unknown" and isinstance(container, dict):
            container[draw(st.sampled_from(["extra", "unitz", "inputz", "typ", "Layers", "call"]))] = \
                copy.deepcopy(draw(st.sampled_from(OTHER_KINDS)))
        elif kind == "duplicate" and isinstance(container, list):
            container.insert(key, container[key])
    return name, data, "json" if as_json else "yaml"


@FUZZ
@given(tree_mutant())
def test_tree_mutants_get_a_verdict_and_located_messages(workdir, mutant):
    name, data, kind = mutant
    if kind == "json":
        text = json.dumps(data, indent=2)
        path = workdir / f"tree_{Path(name).stem}.json"
    else:
        text = yaml.safe_dump(data, sort_keys=False)
        path = workdir / f"tree_{name}"
    path.write_text(text, encoding="utf-8")
    check(path, text)


def test_the_fuzzer_can_fail(workdir, monkeypatch):
    """The controls: a crash inside validation, or a problem without a place, fails `check`."""
    path = workdir / "broken_copy.yaml"
    text = TEXTS["digits.yaml"].replace("units: 64", "units: -64")
    path.write_text(text, encoding="utf-8")
    check(path, text)  # a located problem passes
    monkeypatch.setattr("specc.spec.source.SourceMap.locate", lambda self, problem, at_key=False: problem)
    with pytest.raises(AssertionError, match="problem without a place"):
        check(path, text)
    monkeypatch.undo()

    def crash(*args, **kwargs):
        raise KeyError("a bug")
    monkeypatch.setattr("specc.model.compile_spec", crash)
    with pytest.raises(KeyError):
        check(workdir / "digits.yaml", TEXTS["digits.yaml"])
