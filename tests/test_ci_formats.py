"""`specc validate` for CI: GitHub Actions annotations, SARIF 2.1.0, --check-data on the data's headers, and the
pre-commit hook."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_spec_errors import BASE, CASES, edit, position

from specc.errors import Problem
from specc.report import RULES, github_command
from support import ROOT, run

BROKEN = edit(("    inputs: merged\n", "    inputs: mergd\n"))  # an unknown tensor, line 16, column 13


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- GitHub Actions workflow commands ------------------------------------------------------------------------------

def test_github_annotation_line(tmp_path):
    path = write(tmp_path, BROKEN)
    result = run("validate", "--format", "github", path)
    assert result.returncode == 1
    assert result.stdout == (f"::error file={path},line=16,col=13,title=specc%3A layers.dense_2.inputs::"
                             "unknown tensor 'mergd' (did you mean 'merged'?)\n")
    assert "1 problem(s) in 1 of 1 file(s)" in result.stderr


def test_github_format_of_a_valid_spec_says_nothing_on_stdout(tmp_path):
    result = run("validate", "--format", "github", write(tmp_path, BASE))
    assert (result.returncode, result.stdout) == (0, "")


# GitHub's command grammar: `::name key=value,key=value::message`, where no value holds ':' or ',' and nothing
# holds a line break or a bare '%' (each is written %XX)
COMMAND = re.compile(r"::error( [a-z]+=[^:,\r\n%]*(?:%(?:25|0D|0A|3A|2C)[^:,\r\n%]*)*"
                     r"(,[a-z]+=[^:,\r\n%]*(?:%(?:25|0D|0A|3A|2C)[^:,\r\n%]*)*)*)?::[^\r\n]*")


def _unescape(text: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def test_github_escapes_percent_newlines_colons_and_commas():
    problem = Problem("50% of 'a,b'\nthen: c", ("layers", "x:y"), "dir,1/100%: spec.yaml", 3, 7)
    line = github_command(problem)
    assert line == ("::error file=dir%2C1/100%25%3A spec.yaml,line=3,col=7,title=specc%3A layers.x%3Ay::"
                    "50%25 of 'a,b'%0Athen: c")
    assert COMMAND.fullmatch(line)
    properties, message = line[len("::error "):].split("::", 1)
    assert dict(p.split("=", 1) for p in properties.split(",")) == {
        "file": "dir%2C1/100%25%3A spec.yaml", "line": "3", "col": "7", "title": "specc%3A layers.x%3Ay"}
    assert _unescape(message) == problem.message
    assert _unescape("dir%2C1/100%25%3A spec.yaml") == problem.file


def test_github_command_of_a_problem_without_a_place():
    assert github_command(Problem("no such file", (), "gone.yaml")) == \
        "::error file=gone.yaml,title=specc::no such file"


def test_every_broken_spec_gives_well_formed_commands(tmp_path):
    for i, case in enumerate(CASES):
        path = write(tmp_path, edit(*case[1]), f"case{i}.yaml")
        for line in run("validate", "--format", "github", path).stdout.splitlines():
            assert COMMAND.fullmatch(line), (case[0], line)


# -- SARIF 2.1.0 ---------------------------------------------------------------------------------------------------

# The parts of the SARIF 2.1.0 JSON Schema (OASIS, sarif-schema-2.1.0.json) that a log of located results uses:
# their required properties, types and enumerations, as the schema states them.
SARIF_SUBSET = {
    "type": "object", "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string"}, "version": {"enum": ["2.1.0"]},
        "runs": {"type": "array", "items": {"$ref": "#/definitions/run"}}},
    "definitions": {
        "run": {"type": "object", "required": ["tool"], "properties": {
            "tool": {"type": "object", "required": ["driver"], "properties": {
                "driver": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "version": {"type": "string"},
                    "rules": {"type": "array", "uniqueItems": True, "items": {
                        "type": "object", "required": ["id"], "properties": {
                            "id": {"type": "string"},
                            "shortDescription": {"type": "object", "required": ["text"]},
                            "defaultConfiguration": {"type": "object", "properties": {
                                "level": {"enum": ["none", "note", "warning", "error"]}}}}}}}}}},
            "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
            "results": {"type": "array", "items": {"$ref": "#/definitions/result"}}}},
        "result": {"type": "object", "required": ["message"], "properties": {
            "ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": -1},
            "level": {"enum": ["none", "note", "warning", "error"]},
            "message": {"type": "object", "anyOf": [{"required": ["text"]}, {"required": ["id"]}]},
            "locations": {"type": "array", "items": {"type": "object", "properties": {
                "physicalLocation": {"type": "object", "anyOf": [{"required": ["address"]},
                                                                 {"required": ["artifactLocation"]}],
                                     "properties": {
                    "artifactLocation": {"type": "object", "properties": {"uri": {"type": "string"}}},
                    "region": {"type": "object", "properties": {
                        "startLine": {"type": "integer", "minimum": 1},
                        "startColumn": {"type": "integer", "minimum": 1}}}}}}}}}},
    },
}


def sarif_of(*paths) -> tuple[int, dict]:
    result = run("validate", "--format", "sarif", *paths)
    return result.returncode, json.loads(result.stdout)


def test_sarif_log_of_a_broken_spec(tmp_path):
    path = write(tmp_path, BROKEN)
    code, log = sarif_of(path)
    assert code == 1
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (sarif_run,) = log["runs"]
    rules = sarif_run["tool"]["driver"]["rules"]
    assert sarif_run["tool"]["driver"]["name"] == "specc"
    (result,) = sarif_run["results"]
    assert result["ruleId"] == "unknown-name" and rules[result["ruleIndex"]]["id"] == "unknown-name"
    assert result["level"] == "error"
    assert result["message"]["text"] == "layers.dense_2.inputs: unknown tensor 'mergd' (did you mean 'merged'?)"
    (location,) = result["locations"]
    assert location["physicalLocation"] == {"artifactLocation": {"uri": path.as_uri()},
                                            "region": {"startLine": 16, "startColumn": 13}}


def test_sarif_against_the_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    paths = [write(tmp_path, edit(*case[1]), f"case{i}.yaml") for i, case in enumerate(CASES)]
    code, log = sarif_of(*paths, write(tmp_path, BASE), tmp_path / "missing.yaml")
    assert code == 1
    jsonschema.validate(log, SARIF_SUBSET)
    assert len(log["runs"][0]["results"]) >= len(CASES)
    assert {r["ruleId"] for r in log["runs"][0]["results"]} <= {rule.id for rule in RULES}


def test_sarif_of_valid_specs_has_no_results(tmp_path):
    code, log = sarif_of(write(tmp_path, BASE))
    assert code == 0 and log["runs"][0]["results"] == []


def test_relative_paths_stay_relative_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, BROKEN, "my spec.yaml")
    _, log = sarif_of("my spec.yaml")
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "my%20spec.yaml"}


# the kind of each broken spec of test_spec_errors, as a reviewer would file it
RULE_OF_CASE = {
    "yaml-syntax": "syntax", "duplicate-key-block": "duplicate-key", "duplicate-key-flow": "duplicate-key",
    "duplicate-top-level": "duplicate-key", "missing-specc": "missing-key", "wrong-version": "invalid-value",
    "version-as-string": "invalid-value", "unknown-top-level-key": "unknown-key",
    "slash-in-layer-name": "invalid-value", "space-in-input-name": "invalid-value",
    "empty-layer-name": "invalid-value", "unknown-layer-type": "unknown-name", "layer-without-type": "missing-key",
    "unknown-layer-key": "unknown-key", "units-string": "invalid-value", "units-float": "invalid-value",
    "units-negative": "invalid-value", "unknown-activation": "unknown-name", "unknown-optimizer": "unknown-name",
    "optimizer-unknown-key": "unknown-key", "optimizer-out-of-range": "invalid-value",
    "unknown-loss-in-dict": "unknown-name", "unknown-loss": "unknown-name", "unknown-metric": "unknown-name",
    "unknown-tensor": "unknown-name", "unknown-tensor-in-list": "unknown-name", "inputs-wrong-type": "invalid-value",
    "cycle": "cycle", "unknown-output": "unknown-name", "output-twice": "name-clash",
    "output-is-input": "invalid-value", "input-reaches-no-output": "unused", "layer-reaches-no-output": "unused",
    "call-unknown-layer": "unknown-name", "defined-never-called": "unused", "concatenate-shapes": "shape",
    "add-shapes": "shape", "dense-on-int32": "shape", "loss-missing-output": "invalid-value",
    "loss-weights-unknown-output": "unknown-name", "loss-weights-length": "invalid-value",
    "loss-weights-negative": "invalid-value", "data-unknown-input": "unknown-name",
    "data-unknown-target": "unknown-name", "validation-and-split": "invalid-value",
    "validation-split-range": "invalid-value", "fit-epochs-zero": "invalid-value",
    "sequential-submodel": "unknown-key", "graph-submodel": "unknown-name",
}


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_rule_per_kind_of_problem(tmp_path, case):
    name, edits, path = case[0], case[1], case[3]
    code, log = sarif_of(write(tmp_path, edit(*edits)))
    assert code == 1
    text = [r for r in log["runs"][0]["results"] if r["message"]["text"].startswith(f"{path}: " if path else "")]
    assert text, log["runs"][0]["results"]
    assert text[0]["ruleId"] == RULE_OF_CASE[name]


def test_every_case_has_its_rule():
    assert set(RULE_OF_CASE) == {case[0] for case in CASES}


def test_a_missing_file_and_an_empty_one(tmp_path):
    code, log = sarif_of(tmp_path / "gone.yaml", write(tmp_path, "", "empty.yaml"))
    assert code == 1
    results = log["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["unreadable-file", "unreadable-file"]
    assert "region" not in results[0]["locations"][0]["physicalLocation"]


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif"])
def test_exit_codes_are_the_same_in_every_format(tmp_path, fmt):
    good, bad = write(tmp_path, BASE, "good.yaml"), write(tmp_path, BROKEN, "bad.yaml")
    assert run("validate", "--format", fmt, good).returncode == 0
    assert run("validate", "--format", fmt, good, bad).returncode == 1
    assert run("validate", "--format", "yaml", good).returncode == 2


# -- --check-data: the headers of the data files ------------------------------------------------------------------

DATA_SPEC = edit(("path: data/train.npz", "path: train.npz"), ("  validation_split: 0.2\n", ""))


def save(tmp_path: Path, **arrays):
    np.savez(tmp_path / "train.npz", **arrays)


GOOD_DATA = dict(x_main=np.zeros((10, 8), np.float32), x_aux=np.zeros((10, 4), np.float32),
                 y=np.zeros(10, np.int64), y_aux=np.zeros((10, 1), np.float32))


def check_data(tmp_path: Path):
    return run("validate", "--check-data", write(tmp_path, DATA_SPEC))


def test_check_data_of_good_data(tmp_path):
    save(tmp_path, **GOOD_DATA)
    assert check_data(tmp_path).returncode == 0


def test_check_data_missing_file(tmp_path):
    result = check_data(tmp_path)
    line, column = position(DATA_SPEC, "path: train.npz")
    assert result.returncode == 1
    assert f"spec.yaml:{line}:{column}: data.train: train.npz: no such file" in result.stderr


def test_without_check_data_the_data_is_not_opened(tmp_path):
    assert run("validate", write(tmp_path, DATA_SPEC)).returncode == 0


@pytest.mark.parametrize("change, at, message", [
    ({"x_main": None}, "x_main,", "train.npz: no array 'x_main' for input 'main'"),
    ({"x_aux": np.zeros((10, 5), np.float32)}, "x_aux}",
     "array 'x_aux' has shape (10, 5); input 'aux' needs (rows, 4)"),
    ({"x_main": np.array(["a"] * 10)}, "x_main,", "array 'x_main' has dtype <U1; numbers are needed"),
    ({"y_aux": np.zeros((10, 3), np.float32)}, "y_aux}",
     "array 'y_aux' has shape (10, 3); (rows, 1) is needed (target of output 'aux_out')"),
    ({"y": np.zeros((10, 3), np.int64)}, "y, aux_out: y_aux",
     "array 'y' has shape (10, 3); class labels of shape (rows) are needed (target of output 'out')"),
    ({"y": np.zeros(9, np.int64)}, "path: train.npz",
     "arrays have different numbers of rows (array 'x_main': 10, array 'x_aux': 10, array 'y': 9, array 'y_aux': 10)"),
], ids=["missing-array", "input-shape", "input-dtype", "target-shape", "labels-shape", "rows"])
def test_check_data_problem_at_the_spec_line(tmp_path, change, at, message):
    arrays = {k: v for k, v in {**GOOD_DATA, **change}.items() if v is not None}
    save(tmp_path, **arrays)
    result = check_data(tmp_path)
    assert result.returncode == 1
    line, column = position(DATA_SPEC, at)
    (said,) = [s for s in result.stderr.splitlines() if message in s]
    assert said.startswith(f"{tmp_path / 'spec.yaml'}:{line}:{column}: "), said


def test_int_input_refuses_float_data(tmp_path):
    spec = DATA_SPEC.replace("main: {shape: [8]}", "main: {shape: [8], dtype: int32}").replace(
        "{type: Dense, units: 16, activation: relu, inputs: main}",
        "{type: Embedding, input_dim: 5, output_dim: 2, inputs: main}\n  flat: {type: Flatten, inputs: dense_1}") \
        .replace("inputs: [dense_1, aux]", "inputs: [flat, aux]")
    np.savez(tmp_path / "train.npz", **GOOD_DATA)
    result = run("validate", "--check-data", write(tmp_path, spec))
    assert "array 'x_main' has dtype float32; the input is int32 (integer ids)" in result.stderr


def test_check_data_reads_only_headers(tmp_path, monkeypatch):
    from specc.io import npz
    save(tmp_path, **{**GOOD_DATA, "x_aux": np.zeros((10, 5), np.float32)})

    def no_reading(self, names=None):
        raise AssertionError("an array was read")
    monkeypatch.setattr(npz.NpzArchive, "read", no_reading)
    result = check_data(tmp_path)
    assert result.returncode == 1 and "array 'x_aux' has shape (10, 5)" in result.stderr


def test_check_data_in_sarif_is_a_data_rule(tmp_path):
    save(tmp_path, **{**GOOD_DATA, "x_aux": np.zeros((10, 5), np.float32)})
    result = run("validate", "--check-data", "--format", "sarif", write(tmp_path, DATA_SPEC))
    (found,) = json.loads(result.stdout)["runs"][0]["results"]
    assert found["ruleId"] == "data"


# -- pre-commit ----------------------------------------------------------------------------------------------------

HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def test_hook_definition():
    (hook,) = HOOKS
    assert hook["id"] == "specc-validate" and hook["language"] == "python"
    assert hook["entry"].split()[:2] == ["specc", "validate"]
    files = re.compile(hook["files"])
    assert all(files.search(name) for name in ("a.yaml", "dir/b.yml", "c.json"))
    assert not any(files.search(name) for name in ("a.py", "yaml.txt", "b.jsonl"))


def test_hook_entry_skips_files_that_are_not_specs(tmp_path):
    other = write(tmp_path, "name: ci\non: [push]\n", "workflow.yml")
    data = write(tmp_path, '{"a": {"specc": 1}, "b": 2}', "data.json")
    entry = HOOKS[0]["entry"].split()[1:]
    assert run(*entry, other, write(tmp_path, BASE)).returncode == 0
    result = run(*entry, other, write(tmp_path, BROKEN, "bad.yaml"))
    assert result.returncode == 1 and "bad.yaml:16:13" in result.stderr and "workflow.yml" not in result.stderr
    assert run(*entry, data).returncode == 1  # a quoted specc key is taken for a JSON spec's


@pytest.mark.skipif(shutil.which("pre-commit") is None and not (ROOT / ".venv/bin/pre-commit").exists(),
                    reason="pre-commit is not installed")
def test_pre_commit_runs_the_hook(tmp_path):
    """pre-commit itself, in a repository of its own, installs specc from this checkout and runs the hook."""
    tool = shutil.which("pre-commit") or str(ROOT / ".venv/bin/pre-commit")
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    write(repo, BASE, "good.yaml")
    write(repo, "name: ci\non: [push]\n", "workflow.yml")
    write(repo, BROKEN, "bad.yaml")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    env = {"PRE_COMMIT_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([tool, "try-repo", str(ROOT), "specc-validate", "--all-files"], cwd=repo,
                          capture_output=True, text=True, env=env, timeout=1200)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "bad.yaml:16:13: layers.dense_2.inputs: unknown tensor 'mergd'" in said
    assert "workflow.yml" not in said.split("specc validate")[-1]
