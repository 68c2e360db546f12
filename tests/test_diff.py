"""`specc diff OLD NEW`: a semantic diff of two specs, as text, JSON and Markdown; exit 0 equal, 1 different,
2 for a side that cannot be read or is not valid. Parameter counts below are worked out by hand from the base
spec of test_spec_errors: main (8) -> dense_1 Dense 16 (144) -> merged with aux (4): 20 -> dense_2 Dense 8 (168)
-> out Dense 3 (27); dense_1 -> aux_out Dense 1 (17); 356 in all."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from test_spec_errors import BASE, edit, position

from specc.diff import ABSENT, Change, LayerChange, SpecDiff, as_text
from support import run


def diff(tmp_path: Path, old: str, new: str, *options) -> tuple[int, str]:
    (tmp_path / "old.yaml").write_text(old)
    (tmp_path / "new.yaml").write_text(new)
    result = run("diff", *options, tmp_path / "old.yaml", tmp_path / "new.yaml")
    return result.returncode, result.stdout


def lines_of(tmp_path: Path, old: str, new: str) -> list[str]:
    code, out = diff(tmp_path, old, new)
    assert code == 1, out
    lines = out.splitlines()
    assert lines[:2] == [f"--- {tmp_path / 'old.yaml'}", f"+++ {tmp_path / 'new.yaml'}"]
    return lines[2:]


DENSE_2 = "    units: 8\n"
ADDED = edit(("  out: {type: Dense, units: 3, activation: softmax, inputs: dense_2}",
              "  pre: {type: Dense, units: 8, inputs: dense_2}\n"
              "  out: {type: Dense, units: 3, activation: softmax, inputs: pre}"))

CASES = {
    "arguments": (BASE, edit((DENSE_2, "    units: 12\n"),
                             ("activation: relu\n    inputs", "activation: tanh\n    inputs")), [
        "layers",
        "  ~ dense_2 (Dense): changed, params 168 -> 252",
        "      units: 8 -> 12",
        "      activation: relu -> tanh",
        "  ~ out (Dense): reshaped, params 27 -> 39",
        "      its inputs' shapes changed",
        "params: 356 -> 452 (+96)"]),
    "added-and-wiring": (BASE, ADDED, [
        "layers",
        "  + pre (Dense): added, params 72",
        "  ~ out (Dense): changed, params 27",
        "      inputs: [dense_2] -> [pre]",
        "params: 356 -> 428 (+72)"]),
    "removed": (ADDED, BASE, [
        "layers",
        "  ~ out (Dense): changed, params 27",
        "      inputs: [pre] -> [dense_2]",
        "  - pre (Dense): removed, params 72",
        "params: 428 -> 356 (-72)"]),
    "renamed": (BASE, edit(("  dense_2:\n", "  hidden:\n"), ("inputs: dense_2}", "inputs: hidden}")), [
        "layers",
        "  > dense_2 -> hidden (Dense): renamed, params 168",
        "params: 356 (unchanged)"]),
    "renamed-output": (BASE, edit(("  aux_out: {type", "  side: {type"),
                                  ("outputs: [out, aux_out]", "outputs: [out, side]"),
                                  ("aux_out: binary_crossentropy}", "side: binary_crossentropy}"),
                                  ("aux_out: 0.5}", "side: 0.5}"), ("aux_out: y_aux}", "side: y_aux}")), [
        "layers",
        "  > aux_out -> side (Dense): renamed, params 17",
        "params: 356 (unchanged)"]),
    "input-shape": (BASE, edit(("aux: {shape: [4]}", "aux: {shape: [6]}")), [
        "layers",
        "  ~ dense_2 (Dense): reshaped, params 168 -> 184",
        "      its inputs' shapes changed",
        "settings",
        "  ~ inputs.aux.shape: [4] -> [6]",
        "params: 356 -> 372 (+16)"]),
    "input-added": (BASE, edit(("  aux: {shape: [4]}\n", "  aux: {shape: [4]}\n  ids: {shape: [2], dtype: int32}\n"),
                               ("inputs: [dense_1, aux]", "inputs: [dense_1, aux, flat]"),
                               ("  dense_2:\n", "  emb: {type: Embedding, input_dim: 5, output_dim: 2, inputs: ids}\n"
                                              "  flat: {type: Flatten, inputs: emb}\n  dense_2:\n")), [
        "layers",
        "  ~ merged (Concatenate): changed, params 0",
        "      inputs: [dense_1, aux] -> [dense_1, aux, flat]",
        "  + emb (Embedding): added, params 10",
        "  + flat (Flatten): added, params 0",
        "  ~ dense_2 (Dense): reshaped, params 168 -> 200",
        "      its inputs' shapes changed",
        "settings",
        "  + inputs.ids: (none) -> {shape: [2], dtype: int32}",
        "params: 356 -> 398 (+42)"]),
    "loss-weights-and-metrics": (BASE, edit(("aux_out: 0.5}", "aux_out: 0.25}"),
                                            ("metrics: [accuracy]", "metrics: []")), [
        "settings",
        "  ~ compile.loss_weights.aux_out: 0.5 -> 0.25",
        "  ~ compile.metrics: [accuracy] -> []",
        "params: 356 (unchanged)"]),
    "outputs": (BASE, edit(("outputs: [out, aux_out]", "outputs: [aux_out, out]")), [
        "settings",
        "  ~ outputs: [out, aux_out] -> [aux_out, out]",
        "params: 356 (unchanged)"]),
    "optimizer-setting": (BASE, edit(("optimizer: adam", "optimizer: {type: adam, learning_rate: 0.01}")), [
        "settings",
        "  ~ compile.optimizer.learning_rate: 0.001 -> 0.01",
        "params: 356 (unchanged)"]),
    "fit-and-data": (BASE, edit(("epochs: 2", "epochs: 5"), ("validation_split: 0.2", "validation_split: 0.1")), [
        "settings",
        "  ~ data.validation_split: 0.2 -> 0.1",
        "  ~ fit.epochs: 2 -> 5",
        "params: 356 (unchanged)"]),
}


@pytest.mark.parametrize("old, new, expected", CASES.values(), ids=CASES.keys())
def test_diff_lines(tmp_path, old, new, expected):
    assert lines_of(tmp_path, old, new) == expected


def test_another_loss_is_one_change(tmp_path):
    lines = lines_of(tmp_path, BASE, edit(("aux_out: binary_crossentropy}", "aux_out: mse}")))
    assert lines[0] == "settings" and lines[2:] == ["params: 356 (unchanged)"]
    old, new = lines[1].removeprefix("  ~ compile.loss.aux_out: ").split(" -> ")
    assert "binary_crossentropy" in old and "mse" in new


def test_another_optimizer_is_one_change(tmp_path):
    lines = lines_of(tmp_path, BASE, edit(("optimizer: adam", "optimizer: sgd")))
    assert lines[0] == "settings" and lines[2:] == ["params: 356 (unchanged)"]
    assert lines[1].startswith("  ~ compile.optimizer: {type: adam, learning_rate: 0.001,")
    assert " -> {type: sgd, learning_rate: 0.01," in lines[1]


BLOCK_STYLE = """\
# the base spec, written another way: block style, other key order, comments, defaults written out
name: base
specc: 1
inputs:
  aux:
    shape: [4]
    dtype: float32
  main: {shape: [8]}
layers:
  dense_1:
    inputs: main      # the main input
    units: 16
    type: Dense
    use_bias: true
    activation: relu
  merged: {type: Concatenate, inputs: [dense_1, aux]}
  dense_2: {type: Dense, units: 8, activation: relu, inputs: [merged]}
  out: {inputs: dense_2, type: Dense, activation: softmax, units: 3}
  aux_out:
    type: Dense
    units: 1
    activation: sigmoid
    inputs: dense_1
outputs:
  - out
  - aux_out
compile:
  metrics: [accuracy]
  loss_weights: {aux_out: 0.5, out: 1.0}
  loss:
    aux_out: binary_crossentropy
    out: sparse_categorical_crossentropy
  optimizer: {type: adam}
fit: {batch_size: 16, epochs: 2}
data:
  validation_split: 0.2
  train:
    targets: {aux_out: y_aux, out: y}
    path: data/train.npz
    inputs: {aux: x_aux, main: x_main}
seed: 0
"""


def test_formatting_is_no_difference(tmp_path):
    assert diff(tmp_path, BASE, BLOCK_STYLE) == (0, "")


def test_yaml_and_json_of_one_spec_are_equal(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(yaml.safe_load(BASE), indent=1))
    (tmp_path / "spec.yaml").write_text(BASE)
    result = run("diff", tmp_path / "spec.yaml", tmp_path / "spec.json")
    assert (result.returncode, result.stdout) == (0, "")


def test_markdown(tmp_path):
    code, out = diff(tmp_path, BASE, edit((DENSE_2, "    units: 12\n"), ("epochs: 2", "epochs: 5")), "--format",
                     "markdown")
    assert code == 1
    assert out.splitlines() == [
        f"**specc diff** `{tmp_path / 'old.yaml'}` → `{tmp_path / 'new.yaml'}`: parameters 356 → 452 (+96)",
        "",
        "| layer | type | change | params |",
        "|---|---|---|---|",
        "| `dense_2` | Dense | units: 8 → 12 | 168 → 252 |",
        "| `out` | Dense | its inputs' shapes changed | 27 → 39 |",
        "",
        "| setting | old | new |",
        "|---|---|---|",
        "| `fit.epochs` | 2 | 5 |"]


def test_markdown_of_equal_specs(tmp_path):
    code, out = diff(tmp_path, BASE, BASE, "--format", "markdown")
    assert code == 0 and out.endswith(": no differences\n")


def test_json(tmp_path):
    code, out = diff(tmp_path, BASE, edit(("  dense_2:\n", "  hidden:\n"), ("inputs: dense_2}", "inputs: hidden}"),
                                          ("aux: {shape: [4]}", "aux: {shape: [6]}")), "--format", "json")
    assert code == 1
    found = json.loads(out)
    assert found["equal"] is False and found["params"] == {"old": 356, "new": 372}
    assert found["layers"] == [{"change": "renamed", "name": "hidden", "old_name": "dense_2", "type": "Dense",
                                "arguments": [], "inputs": None, "params": {"old": 168, "new": 184}}]
    assert found["changes"] == [{"key": "inputs.aux.shape", "old": [4], "new": [6]}]


def test_json_of_equal_specs(tmp_path):
    code, out = diff(tmp_path, BASE, BLOCK_STYLE, "--format", "json")
    assert code == 0 and json.loads(out)["equal"] is True


def test_text_is_coloured_for_a_terminal_only(tmp_path):
    found = SpecDiff("a", "b", [LayerChange("added", "x", "Dense", params=(None, 3))],
                     [Change("fit.epochs", 1, 2), Change("inputs.y", ABSENT, {"shape": [1]})], (0, 3))
    assert "\x1b[32m  + x (Dense): added, params 3" in as_text(found)
    _, out = diff(tmp_path, BASE, ADDED)
    assert "\x1b[" not in out


# -- which sides -----------------------------------------------------------------------------------------------

def test_an_invalid_side_exits_2_with_its_located_problem(tmp_path):
    (tmp_path / "old.yaml").write_text(BASE)
    (tmp_path / "new.yaml").write_text(edit(("    inputs: merged\n", "    inputs: mergd\n")))
    result = run("diff", tmp_path / "old.yaml", tmp_path / "new.yaml")
    assert result.returncode == 2 and result.stdout == ""
    assert f"{tmp_path / 'new.yaml'}:16:13: layers.dense_2.inputs: unknown tensor 'mergd'" in result.stderr


def test_both_invalid_sides_are_reported(tmp_path):
    text = edit(("epochs: 2", "epochs: 0"))
    (tmp_path / "old.yaml").write_text(text)
    result = run("diff", tmp_path / "old.yaml", tmp_path / "gone.yaml")
    assert result.returncode == 2
    line, column = position(text, "epochs: 0", len("epochs: "))
    first, second = result.stderr.splitlines()
    assert first.startswith(f"{tmp_path / 'old.yaml'}:{line}:{column}: fit.epochs: ")
    assert second == f"{tmp_path / 'gone.yaml'}: no such file"


def test_a_missing_side_exits_2(tmp_path):
    (tmp_path / "old.yaml").write_text(BASE)
    result = run("diff", tmp_path / "old.yaml", tmp_path / "gone.yaml")
    assert result.returncode == 2 and "gone.yaml: no such file" in result.stderr


def test_usage_exits_2(tmp_path):
    assert run("diff", tmp_path / "only.yaml").returncode == 2


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A git repository holding the base spec at its first commit, as the current folder."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "model.yaml").write_text(BASE)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_side_from_git(repository):
    (repository / "specs" / "model.yaml").write_text(edit(("epochs: 2", "epochs: 3")))
    result = run("diff", "HEAD:specs/model.yaml", "specs/model.yaml")
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["--- HEAD:specs/model.yaml", "+++ specs/model.yaml", "settings",
                                          "  ~ fit.epochs: 2 -> 3", "params: 356 (unchanged)"]
    assert run("diff", "HEAD:specs/model.yaml", "HEAD:specs/model.yaml").returncode == 0


def test_an_invalid_spec_from_git_is_named_as_given(repository):
    (repository / "specs" / "model.yaml").write_text(edit(("    inputs: merged\n", "    inputs: mergd\n")))
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "broken"],
                   check=True)
    result = run("diff", "HEAD:specs/model.yaml", "HEAD~1:specs/model.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("HEAD:specs/model.yaml:16:13: layers.dense_2.inputs: unknown tensor 'mergd'")


@pytest.mark.parametrize("side, said", [
    ("HEAD:specs/nothing.yaml", "git cannot show it"),
    ("no-such-rev:specs/model.yaml", "git cannot show it"),
    ("--output=x:specs/model.yaml", "a revision does not start with '-'"),
])
def test_a_side_git_cannot_show_exits_2(repository, side, said):
    result = run("diff", "--", side, "specs/model.yaml")
    assert result.returncode == 2 and said in result.stderr
    assert not (repository / "x").exists()
