"""Broken specs: each is a minimal edit of one valid spec, and each must fail with one clear, located message.

A case names the edit, a distinctive part of the message, the dotted key path, and where the problem must be
reported: the first character of `at` in the edited text (so the expected line and column are read off the
text itself, not off the implementation).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import specc
from specc.errors import dotted

BASE = """\
specc: 1
name: base
seed: 0

inputs:
  main: {shape: [8]}
  aux: {shape: [4]}

layers:
  dense_1: {type: Dense, units: 16, activation: relu, inputs: main}
  merged: {type: Concatenate, inputs: [dense_1, aux]}
  dense_2:
    type: Dense
    units: 8
    activation: relu
    inputs: merged
  out: {type: Dense, units: 3, activation: softmax, inputs: dense_2}
  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}

outputs: [out, aux_out]

compile:
  optimizer: adam
  loss: {out: sparse_categorical_crossentropy, aux_out: binary_crossentropy}
  loss_weights: {out: 1.0, aux_out: 0.5}
  metrics: [accuracy]

data:
  train:
    path: data/train.npz
    inputs: {main: x_main, aux: x_aux}
    targets: {out: y, aux_out: y_aux}
  validation_split: 0.2

fit: {epochs: 2, batch_size: 16}
"""

TOWER = """\
models:
  tower:
    input: {shape: [16]}
    sequential:
      - {type: Dense, units: 8, activation: relu}
      - {type: Dense, unit: 1, activation: sigmoid}

layers:
"""

GRAPH_MODEL = """\
models:
  head:
    inputs: {x: {shape: [16]}}
    layers:
      y: {type: Dense, units: 1, activation: sigmoid, inputs: xx}
    outputs: [y]

layers:
"""


def edit(*replacements: tuple[str, str]) -> str:
    text = BASE
    for old, new in replacements:
        assert text.count(old) == 1, f"the edit {old!r} must match exactly once"
        text = text.replace(old, new)
    return text


def position(text: str, at: str, offset: int = 0) -> tuple[int, int]:
    """1-based line and column of the first character of `at` (which must occur once) plus `offset`."""
    assert text.count(at) == 1, f"{at!r} must occur exactly once in the edited spec"
    index = text.index(at) + offset
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def problems_of(tmp_path: Path, text: str, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(specc.SpecError) as caught:
        specc.load(path)
    problems = caught.value.problems
    assert problems, "a SpecError must carry at least one problem"
    for p in problems:
        assert p.file == str(path)
        assert str(p).startswith(f"{path}:{p.line}:{p.column}: ")
        assert "Traceback" not in str(p)
    return problems


def the_problem(problems, path: str):
    found = [p for p in problems if dotted(p.path) == path]
    assert len(found) == 1, f"expected one problem at {path!r}, got: {[str(p) for p in problems]}"
    return found[0]


# (id, edits, message part(s), dotted path, `at` (or (at, offset)), check column too, only problem)
CASES = [
    ("yaml-syntax", [("name: base", "name: base: x")],
     ["invalid YAML", "mapping values are not allowed here"], "", ("base: x", 4), True, True),
    ("duplicate-key-block", [("    units: 8\n", "    units: 8\n    units: 9\n")],
     ["duplicate key 'units' (first given on line 14)"], "layers.dense_2.units", "units: 9", True, True),
    ("duplicate-key-flow", [("units: 16,", "units: 16, units: 32,")],
     ["duplicate key 'units' (first given on line 10)"], "layers.dense_1.units", "units: 32", True, True),
    ("duplicate-top-level", [("seed: 0\n", "seed: 0\nseed: 1\n")],
     ["duplicate key 'seed' (first given on line 3)"], "seed", "seed: 1", True, True),
    ("missing-specc", [("specc: 1\n", "")],
     ["missing required key 'specc'"], "", "name: base", True, True),
    ("wrong-version", [("specc: 1", "specc: 2")],
     ["unsupported format version 2", "specc: 1"], "specc", ("specc: 2", 7), True, True),
    ("version-as-string", [("specc: 1", "specc: '1'")],
     ["unsupported format version '1'"], "specc", "'1'", True, True),
    ("unknown-top-level-key", [("layers:", "layres:")],
     ["unknown key 'layres' (did you mean 'layers'?)", "allowed here:"], "layres", "layres", True, True),
    ("slash-in-layer-name",
     [("  dense_1: {type: Dense", "  m/dense_1: {type: Dense"), ("inputs: [dense_1, aux]", "inputs: [m/dense_1, aux]")],
     ["'m/dense_1' is not a valid name", "'/' separates the parts of weight keys"], "layers.m/dense_1",
     "m/dense_1: {", True, True),
    ("space-in-input-name",
     [("  aux: {shape: [4]}", "  'a ux': {shape: [4]}"), ("[dense_1, aux]", "[dense_1, 'a ux']")],
     ["'a ux' is not a valid name"], "inputs.a ux", "'a ux': {", True, False),
    ("empty-layer-name",
     [("  out: {type: Dense, units: 3", "  '': {type: Dense, units: 3"), ("outputs: [out,", "outputs: ['',")],
     ["'' is not a valid name"], "layers.''", "'': {type", True, False),
    ("unknown-layer-type", [("{type: Dense, units: 16", "{type: Dence, units: 16")],
     ["unknown layer type 'Dence' (did you mean 'Dense'?)"], "layers.dense_1.type", "Dence", True, True),
    ("layer-without-type", [("dense_1: {type: Dense, units: 16,", "dense_1: {units: 16,")],
     ["missing `type:`", "Activation", "`specc vocabulary` lists them", "call:"], "layers.dense_1", "dense_1: {units",
     True, True),
    ("unknown-layer-key", [("    units: 8\n", "    unitz: 8\n")],
     ["unknown key 'unitz' (did you mean 'units'?)", "allowed here:", "use_bias"],
     "layers.dense_2.unitz", "unitz", True, False),
    ("units-string", [("    units: 8\n", '    units: "8"\n')],
     ["expected an integer, got a string '8'"], "layers.dense_2.units", '"8"', True, True),
    ("units-float", [("    units: 8\n", "    units: 8.5\n")],
     ["expected an integer, got a number 8.5"], "layers.dense_2.units", "8.5", True, True),
    ("units-negative", [("    units: 8\n", "    units: -3\n")],
     ["greater than 0", "-3"], "layers.dense_2.units", "-3", True, True),
    ("unknown-activation", [("    activation: relu\n", "    activation: relux\n")],
     ["'relux' is not one of", "(did you mean 'relu'?)"], "layers.dense_2.activation", "relux", True, True),
    ("unknown-optimizer", [("optimizer: adam", "optimizer: rmsprob")],
     ["unknown optimizer 'rmsprob' (did you mean 'rmsprop'?)"], "compile.optimizer", "rmsprob", True, True),
    ("optimizer-unknown-key", [("optimizer: adam", "optimizer: {type: adam, beta1: 0.8}")],
     ["unknown key 'beta1' (did you mean 'beta_1'?)"], "compile.optimizer.beta1", "beta1", True, True),
    ("optimizer-out-of-range", [("optimizer: adam", "optimizer: {type: adam, learning_rate: -1e-3}")],
     ["greater than or equal to 0"], "compile.optimizer.learning_rate", "-1e-3", True, True),
    ("unknown-loss-in-dict", [("aux_out: binary_crossentropy}", "aux_out: binary_crossentropie}")],
     ["unknown loss 'binary_crossentropie'", "(did you mean 'binary_crossentropy'?)"],
     "compile.loss.aux_out", "binary_crossentropie", True, True),
    ("unknown-loss", [("loss: {out: sparse_categorical_crossentropy, aux_out: binary_crossentropy}",
                       "loss: binary_crossentropie")],
     ["(did you mean 'binary_crossentropy'?)"], "compile.loss", "binary_crossentropie", True, True),
    ("unknown-metric", [("metrics: [accuracy]", "metrics: [acuracy]")],
     ["(did you mean 'accuracy'?)"], "compile.metrics[0]", "acuracy", True, True),
    ("unknown-tensor", [("    inputs: merged\n", "    inputs: mergd\n")],
     ["unknown tensor 'mergd' (did you mean 'merged'?)"], "layers.dense_2.inputs", "mergd", True, True),
    ("unknown-tensor-in-list", [("[dense_1, aux]", "[dense_1, auxx]")],
     ["unknown tensor 'auxx' (did you mean 'aux'?)"], "layers.merged.inputs[1]", "auxx", True, True),
    ("inputs-wrong-type", [("    inputs: merged\n", "    inputs: 5\n")],
     ["expected a string or a list, got an integer 5"], "layers.dense_2.inputs", ("inputs: 5", 8), True, True),
    ("cycle", [("[dense_1, aux]", "[dense_1, aux, dense_2]")],
     ["cycle: merged -> dense_2 -> merged"], "layers.merged.inputs", "[dense_1, aux, dense_2]", True, True),
    ("unknown-output", [("outputs: [out, aux_out]", "outputs: [out, aux_output]")],
     ["unknown tensor 'aux_output' (did you mean 'aux_out'?)"], "outputs[1]", "aux_output", True, True),
    ("output-twice", [("outputs: [out, aux_out]", "outputs: [out, aux_out, out]")],
     ["output 'out' is listed twice (first as outputs[0])"], "outputs[2]", ("out]", 0), True, True),
    ("output-is-input", [("outputs: [out, aux_out]", "outputs: [out, aux_out, aux]")],
     ["output 'aux' is a model input"], "outputs[2]", ("aux_out, aux]", 9), True, True),
    ("input-reaches-no-output", [("  aux: {shape: [4]}\n", "  aux: {shape: [4]}\n  other: {shape: [3]}\n")],
     ["input 'other' does not reach any output"], "inputs.other", "{shape: [3]}", True, True),
    ("layer-reaches-no-output",
     [("  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n",
       "  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n"
       "  extra: {type: Dense, units: 2, inputs: dense_1}\n")],
     ["'extra' reaches no output", "list it in `outputs` or remove it"], "layers.extra",
     "{type: Dense, units: 2, inputs: dense_1}", True, True),
    ("call-unknown-layer",
     [("aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}",
       "aux_out: {call: dens_1, inputs: dense_2}")],
     ["no layer or model named 'dens_1' (did you mean 'dense_1'?)"], "layers.aux_out.call", "dens_1", True, True),
    ("defined-never-called",
     [("  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n",
       "  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n"
       "  spare: {type: Dense, units: 4}\n")],
     ["layer 'spare' is defined but never called", "{call: spare, inputs: ...}"], "layers.spare",
     "{type: Dense, units: 4}", True, True),
    ("concatenate-shapes",
     [("units: 16, activation: relu", "units: 32, activation: relu"), ("aux: {shape: [4]}", "aux: {shape: [5, 2]}")],
     ["Concatenate", "(None, 32) and (None, 5, 2)"], "layers.merged", "{type: Concatenate", True, True),
    ("add-shapes", [("merged: {type: Concatenate,", "merged: {type: Add,")],
     ["cannot add tensors of different shapes: (None, 16) and (None, 4)"], "layers.merged", "{type: Add", True, True),
    ("dense-on-int32", [("main: {shape: [8]}", "main: {shape: [8], dtype: int32}")],
     ["Dense takes float inputs, but input 'main' is int32", "Embedding"], "layers.dense_1.inputs",
     ("inputs: main}", 8), True, True),
    ("loss-missing-output",
     [("loss: {out: sparse_categorical_crossentropy, aux_out: binary_crossentropy}",
       "loss: {out: sparse_categorical_crossentropy}")],
     ["output 'aux_out' has no loss"], "compile.loss", "{out: sparse_categorical_crossentropy}", True, True),
    ("loss-weights-unknown-output",
     [("loss_weights: {out: 1.0, aux_out: 0.5}", "loss_weights: {out: 1.0, aux_outt: 0.5}")],
     ["'aux_outt' is not a model output (did you mean 'aux_out'?)", "the model's outputs: out, aux_out"],
     "compile.loss_weights.aux_outt", "aux_outt", False, True),
    ("loss-weights-length",
     [("loss_weights: {out: 1.0, aux_out: 0.5}", "loss_weights: [1.0, 0.5, 0.2]")],
     ["3 loss weight(s) for 2 output(s)"], "compile.loss_weights", "[1.0, 0.5, 0.2]", True, True),
    ("loss-weights-negative",
     [("loss_weights: {out: 1.0, aux_out: 0.5}", "loss_weights: {out: 1.0, aux_out: -0.5}")],
     ["greater than or equal to 0"], "compile.loss_weights.aux_out", "-0.5", True, True),
    ("data-unknown-input",
     [("inputs: {main: x_main, aux: x_aux}", "inputs: {main: x_main, auxiliary: x_aux}")],
     ["'auxiliary' is not a model input", "the model's inputs: main, aux"],
     "data.train.inputs.auxiliary", "auxiliary", False, True),
    ("data-unknown-target",
     [("targets: {out: y, aux_out: y_aux}", "targets: {output: y, aux_out: y_aux}")],
     ["'output' is not a model output (did you mean 'out'?)"], "data.train.targets.output", "output:", False, True),
    ("validation-and-split",
     [("  validation_split: 0.2\n", "  validation_split: 0.2\n  validation: data/val.npz\n")],
     ["give either `validation` or `validation_split`, not both"], "data.validation_split", "0.2\n", True, True),
    ("validation-split-range", [("validation_split: 0.2", "validation_split: 1.5")],
     ["less than 1"], "data.validation_split", "1.5", True, True),
    ("fit-epochs-zero", [("epochs: 2", "epochs: 0")],
     ["greater than 0"], "fit.epochs", ("epochs: 0", 8), True, True),
    ("sequential-submodel",
     [("layers:\n", TOWER),
      ("aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}",
       "aux_out: {call: tower, inputs: dense_1}")],
     ["unknown key 'unit' (did you mean 'units'?)"], "models.tower.sequential[1].unit", "unit: 1", True, False),
    ("graph-submodel",
     [("layers:\n", GRAPH_MODEL),
      ("aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}",
       "aux_out: {call: head, inputs: dense_1}")],
     ["unknown tensor 'xx' (did you mean 'x'?)"], "models.head.layers.y.inputs", "xx}", True, True),
]


@pytest.mark.parametrize("edits, parts, path, at, check_column, only",
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_broken_spec(tmp_path, edits, parts, path, at, check_column, only):
    text = edit(*edits)
    problems = problems_of(tmp_path, text)
    problem = the_problem(problems, path)
    for part in parts:
        assert part in problem.message, str(problem)
    needle, offset = at if isinstance(at, tuple) else (at, 0)
    line, column = position(text, needle, offset)
    assert problem.line == line, str(problem)
    if check_column:
        assert problem.column == column, str(problem)
    if only:
        assert len(problems) == 1, [str(p) for p in problems]


def test_there_are_enough_distinct_cases():
    assert len({case[0] for case in CASES}) == len(CASES) >= 25
    assert len({edit(*case[1]) for case in CASES}) == len(CASES)


def test_base_spec_is_valid(tmp_path):
    (tmp_path / "spec.yaml").write_text(BASE)
    model = specc.load(tmp_path / "spec.yaml")
    assert model.graph.outputs == ["out", "aux_out"]


@pytest.mark.parametrize("text, fixed", [
    (edit(("layers:\n", TOWER), ("aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}",
                                 "aux_out: {call: tower, inputs: dense_1}")), ("unit: 1", "units: 1")),
    (edit(("layers:\n", GRAPH_MODEL), ("aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}",
                                       "aux_out: {call: head, inputs: dense_1}")), ("inputs: xx}", "inputs: x}")),
], ids=["sequential", "graph"])
def test_sub_model_cases_are_one_edit_from_valid(tmp_path, text, fixed):
    (tmp_path / "spec.yaml").write_text(text.replace(*fixed))
    model = specc.load(tmp_path / "spec.yaml")
    assert model.graph.shapes["aux_out"] == (1,)


def test_full_line_format(tmp_path):
    (problem,) = problems_of(tmp_path, edit(("    inputs: merged\n", "    inputs: mergd\n")))
    assert str(problem) == (f"{tmp_path / 'spec.yaml'}:16:13: layers.dense_2.inputs: "
                            "unknown tensor 'mergd' (did you mean 'merged'?)")
    assert problem.path == ("layers", "dense_2", "inputs")


def test_misspelled_required_key_is_one_problem(tmp_path):
    """`unitz: 8` is reported once, as the unknown key suggesting `units`, not again as `units` missing."""
    problems = problems_of(tmp_path, edit(("    units: 8\n", "    unitz: 8\n")))
    assert [p.message.split(";")[0] for p in problems] == ["unknown key 'unitz' (did you mean 'units'?)"]
    assert problems[0].line == 14


def test_two_missing_keys_are_two_problems(tmp_path):
    problems = problems_of(tmp_path, edit(("    units: 8\n", "")))
    assert [p.message for p in problems] == ["missing required key 'units'"]
    both = problems_of(tmp_path, "specc: 1\ninputs: {x: {shape: [3]}}\nlayers: {}\n")
    assert sorted(p.message for p in both) == ["missing required key 'compile'", "missing required key 'outputs'"]


# -- files that are not specs --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"])
def test_empty_file(tmp_path, text):
    (problem,) = problems_of(tmp_path, text)
    assert "the file is empty" in problem.message
    assert (problem.line, problem.column, problem.path) == (1, 1, ())


@pytest.mark.parametrize("text, kind", [("- specc: 1\n- name: x\n", "a list"), ("just words\n", "a string"),
                                        ("42\n", "an integer")])
def test_top_level_not_a_mapping(tmp_path, text, kind):
    (problem,) = problems_of(tmp_path, text)
    assert "a spec is a mapping that starts with 'specc: 1'" in problem.message
    assert kind in problem.message
    assert problem.line == 1


def test_missing_file(tmp_path):
    with pytest.raises(specc.SpecError) as caught:
        specc.load(tmp_path / "nope.yaml")
    (problem,) = caught.value.problems
    assert problem.file == str(tmp_path / "nope.yaml")
    assert "no such file" in problem.message


def test_yaml_tab_indentation(tmp_path):
    (problem,) = problems_of(tmp_path, edit(("  aux: {shape: [4]}", "\taux: {shape: [4]}")))
    assert "invalid YAML" in problem.message and "'\\t'" in problem.message
    assert (problem.line, problem.column) == (7, 1)


def test_yaml_unclosed_flow_sequence(tmp_path):
    (problem,) = problems_of(tmp_path, edit(("outputs: [out, aux_out]", "outputs: [out, aux_out")))
    assert "invalid YAML" in problem.message and "flow sequence" in problem.message
    # the parser notices at the next key, two lines down
    assert problem.line == 22


# -- several problems at once ---------------------------------------------------------------------------------

def test_several_format_errors_all_reported_in_line_order(tmp_path):
    text = edit(("{type: Dense, units: 16", "{type: Dence, units: 16"),
                ("    units: 8\n", '    units: "8"\n'),
                ("    activation: relu\n", "    activation: relux\n"),
                ("optimizer: adam", "optimizer: rmsprob"),
                ("epochs: 2", "epochs: 0"))
    problems = problems_of(tmp_path, text)
    assert [dotted(p.path) for p in problems] == [
        "layers.dense_1.type", "layers.dense_2.units", "layers.dense_2.activation", "compile.optimizer", "fit.epochs"]
    assert [p.line for p in problems] == [10, 14, 15, 23, 35]
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_several_graph_errors_all_reported(tmp_path):
    text = edit(("    inputs: merged\n", "    inputs: mergd\n"),
                ("  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n",
                 "  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_l}\n"
                 "  spare: {type: Dense, units: 4}\n"))
    problems = problems_of(tmp_path, text)
    assert {dotted(p.path): p.line for p in problems} == {
        "layers.dense_2.inputs": 16, "layers.aux_out.inputs": 18, "layers.spare": 19}
    assert [p.line for p in problems] == [16, 18, 19]


def test_graph_errors_sorted_by_line_across_passes(tmp_path):
    # line 11 is "defined but never called" (found in a later pass than line 12's unknown tensor)
    text = edit(("  merged: {type: Concatenate, inputs: [dense_1, aux]}\n",
                 "  shared: {type: Dense, units: 16}\n  bad: {type: Dense, units: 1, inputs: shared}\n"
                 "  merged: {type: Concatenate, inputs: [dense_1, aux]}\n"))
    problems = problems_of(tmp_path, text)
    assert len(problems) == 2
    assert [p.line for p in problems] == [11, 12]


def test_format_and_name_errors_reported_together(tmp_path):
    """A broken layer does not hide an unknown name elsewhere, and what depends on it is not blamed."""
    text = edit(("{type: Dense, units: 16, activation: relu, inputs: main}",
                 "{type: Dence, units: 16, activation: relu, inputs: main}"),   # dense_1: broken type
                ("    inputs: merged\n", "    inputs: mergd\n"),                # dense_2: unknown tensor
                ("outputs: [out, aux_out]", "outputs: [out, aux_outt]"),         # unknown output
                ("  loss_weights:", "  lossweights:"))                           # compile: unknown key
    problems = problems_of(tmp_path, text)
    assert [(dotted(p.path), p.line) for p in problems] == [
        ("layers.dense_1.type", 10), ("layers.dense_2.inputs", 16), ("outputs[1]", 20),
        ("compile.lossweights", 25)]
    assert "did you mean 'merged'" in problems[1].message
    assert "did you mean 'aux_out'" in problems[2].message
    assert "did you mean 'loss_weights'" in problems[3].message
    assert "allowed here: optimizer, loss, loss_weights, metrics" in problems[3].message


def test_a_broken_layer_in_a_sub_model_leaves_the_rest_checked(tmp_path):
    text = edit(("  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n",
                 "  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n"
                 "  side: {call: head, inputs: aux}\n"),
                ("outputs: [out, aux_out]", "outputs: [out, aux_out, side]")) + """
models:
  head:
    inputs: {x: {shape: [4]}}
    layers:
      h: {type: Dense, units: 4, activation: relux, inputs: x}
      y: {type: Dense, units: 1, inputs: hh}
    outputs: [y]
"""
    problems = problems_of(tmp_path, text)
    assert [dotted(p.path) for p in problems] == ["models.head.layers.h.activation", "models.head.layers.y.inputs"]
    assert "unknown tensor 'hh' (did you mean 'h'?)" in problems[1].message


# -- JSON -----------------------------------------------------------------------------------------------------

def _digits_as_data() -> dict:
    import yaml
    return yaml.safe_load((Path(__file__).parents[1] / "specs" / "digits.yaml").read_text())


@pytest.mark.parametrize("indent", [2, "\t", None], ids=["spaces", "tabs", "compact"])
def test_json_spec_loads(tmp_path, indent):
    data = _digits_as_data()
    data["compile"]["optimizer"] = {"type": "adam", "learning_rate": 1e-5}
    text = json.dumps(data, indent=indent)
    assert "1e-05" in text  # a JSON number that YAML 1.1 would read as a string
    (tmp_path / "digits.json").write_text(text)
    model = specc.load(tmp_path / "digits.json")
    assert model.count_params() == 8970
    assert model.spec.compile.optimizer.learning_rate == 1e-5


def test_json_syntax_error_is_located(tmp_path):
    text = json.dumps(_digits_as_data(), indent=2).replace('"name": "digits",', '"name": "digits",,')
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(tmp_path / "bad.json")
    (problem,) = caught.value.problems
    line, column = position(text, ',,', 1)
    assert "invalid JSON" in problem.message
    assert (problem.file, problem.line, problem.column) == (str(tmp_path / "bad.json"), line, column)


def test_json_content_error_is_located(tmp_path):
    data = _digits_as_data()
    data["layers"]["hidden"]["type"] = "Dence"
    text = json.dumps(data, indent="\t")
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(tmp_path / "bad.json")
    (problem,) = caught.value.problems
    assert "unknown layer type 'Dence' (did you mean 'Dense'?)" in problem.message
    assert dotted(problem.path) == "layers.hidden.type"
    assert (problem.line, problem.column) == position(text, '"Dence"')


def test_yaml_exponent_floats_are_numbers(tmp_path):
    (tmp_path / "spec.yaml").write_text(edit(("optimizer: adam", "optimizer: {type: adam, learning_rate: 1e-3, "
                                                                 "epsilon: 2.5E-8}")))
    optimizer = specc.load(tmp_path / "spec.yaml").spec.compile.optimizer
    assert (optimizer.learning_rate, optimizer.epsilon) == (1e-3, 2.5e-8)


# -- safe loading ---------------------------------------------------------------------------------------------

def test_python_object_tag_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    text = edit(("seed: 0", f'seed: !!python/object/apply:os.system ["touch {marker}"]'))
    (problem,) = problems_of(tmp_path, text)
    assert not marker.exists()
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in problem.message
    assert dotted(problem.path) == "seed"
    assert (problem.line, problem.column) == position(text, "!!python")


def test_python_tag_on_a_mapping_is_refused(tmp_path):
    text = edit(("main: {shape: [8]}", "main: !!python/object:collections.OrderedDict {shape: [8]}"))
    (problem,) = problems_of(tmp_path, text)
    assert "'!!python/object:collections.OrderedDict' is not allowed" in problem.message
    assert dotted(problem.path) == "inputs.main"
    assert (problem.line, problem.column) == position(text, "!!python")


def test_python_name_tag_on_a_scalar_is_refused(tmp_path):
    text = edit(("name: base", "name: !!python/name:os.system"))
    (problem,) = problems_of(tmp_path, text)
    assert "!!python/name:os.system" in problem.message and "not allowed" in problem.message
    assert problem.line == 2


# -- YAML merge keys ------------------------------------------------------------------------------------------

MERGED = """\
specc: 1
inputs:
  x: {shape: [4]}
layers:
  a: &dense {type: Dense, units: 3, activation: relu, inputs: x}
  b: &b {<<: *dense, inputs: a, units: 2}
  c: {<<: [*b, *dense], inputs: b, units: 5}
outputs: [c]
compile: {loss: mse}
"""


def test_merge_keys_are_overridden_by_own_keys(tmp_path):
    (tmp_path / "spec.yaml").write_text(MERGED)
    model = specc.load(tmp_path / "spec.yaml")
    assert [(n, model.graph.shapes[n]) for n in "abc"] == [("a", (3,)), ("b", (2,)), ("c", (5,))]
    assert model.spec.layers["c"].activation == "relu"  # merged, not overridden


def test_merge_keys_do_not_excuse_a_duplicate_own_key(tmp_path):
    text = MERGED.replace("units: 5}", "units: 5, units: 6}")
    (problem,) = problems_of(tmp_path, text)
    assert "duplicate key 'units' (first given on line 7)" in problem.message
    assert dotted(problem.path) == "layers.c.units"
    assert (problem.line, problem.column) == position(text, "units: 6")


# -- found by tests/test_fuzz.py ----------------------------------------------------------------------------------

def test_control_character_is_located(tmp_path):
    """A character YAML refuses anywhere (here U+001F) was reported without a line, over two lines."""
    text = BASE.replace("name: base", "name: ba\x1fse")
    (problem,) = problems_of(tmp_path, text)
    assert problem.message == "invalid YAML: unacceptable character #x001f: special characters are not allowed"
    assert (problem.line, problem.column) == position(text, "\x1f")
    assert "\n" not in str(problem)


MODELS = """\
specc: 1
inputs: {a: {shape: [4]}, b: {shape: [4]}}
models:
  tower: {from: MODEL_FROM}
layers:
  out_a: {call: tower, inputs: a}
  out_b: {call: tower, inputs: b}
  both: {type: Concatenate, inputs: [out_a, out_b]}
outputs: [both]
compile: {loss: mse}
"""


def test_import_of_a_missing_file_is_located_at_its_from(tmp_path):
    """It was reported as '<other file>: no such file' with no line of this spec, and the second call of the model
    that failed to compile was reported as 'model calls itself'."""
    text = MODELS.replace("MODEL_FROM", "missing.yaml")
    (problem,) = problems_of(tmp_path, text)
    assert problem.message == "missing.yaml: no such file"
    assert dotted(problem.path) == "models.tower.from"
    assert (problem.line, problem.column) == position(text, "missing.yaml")


@pytest.mark.parametrize("other", ["spec.yaml", "spec.json"], ids=["itself", "through-another"])
def test_import_that_leads_back_to_itself(tmp_path, other):
    """`models: {tower: {from: spec.yaml}}` in spec.yaml recursed until Python's recursion limit, whose
    RecursionError was then taken for a self-call: 25 problems with key paths thousands of characters long."""
    text = MODELS.replace("MODEL_FROM", other)
    if other == "spec.json":  # spec.yaml imports spec.json, which imports spec.yaml
        (tmp_path / "spec.json").write_text(json.dumps(
            {"specc": 1, "inputs": {"x": {"shape": [4]}}, "models": {"back": {"from": "spec.yaml"}},
             "layers": {"y": {"call": "back", "inputs": "x"}}, "outputs": ["y"], "compile": {"loss": "mse"}}))
    (problem,) = problems_of(tmp_path, text)
    chain = "spec.yaml" if other == "spec.yaml" else "spec.json -> spec.yaml"
    assert problem.message == f"importing {chain} leads back to this same model; a model cannot contain itself"
    assert dotted(problem.path) == "models.tower.from"
    assert (problem.line, problem.column) == position(text, other)


def test_time_distributed_layers_wrapping_each_other(tmp_path):
    """`a` wraps `b` wraps `a`: each level peeled a dimension off until the shapes ran out, and the message
    blamed the input's shape."""
    text = BASE.replace("  out: {type: Dense, units: 3, activation: softmax, inputs: dense_2}\n",
                        "  td_a: {type: TimeDistributed, layer: td_b, inputs: dense_2}\n"
                        "  td_b: {type: TimeDistributed, layer: td_a}\n"
                        "  out: {type: Dense, units: 3, activation: softmax, inputs: td_a}\n")
    (problem,) = problems_of(tmp_path, text)
    assert problem.message == "TimeDistributed layers wrap each other in a cycle: td_a -> td_b -> td_a"
    assert dotted(problem.path) == "layers.td_a.layer"
    assert (problem.line, problem.column) == position(text, "td_b, inputs")


def test_time_distributed_of_an_inline_time_distributed(tmp_path):
    """The inner TimeDistributed was never resolved, so the node was silently dropped and the only message was
    'unknown tensor' at the outputs."""
    text = ("specc: 1\ninputs: {x: {shape: [3, 4, 5]}}\nlayers:\n"
            "  a: {type: TimeDistributed, layer: {type: TimeDistributed, layer: {type: Dense, units: 2}}, inputs: x}\n"
            "outputs: [a]\ncompile: {loss: mse}\n")
    (tmp_path / "spec.yaml").write_text(text)
    model = specc.load(tmp_path / "spec.yaml")
    assert model.graph.shapes["a"] == (3, 4, 2)
    assert model.get_layer("a").type_name == "TimeDistributed(TimeDistributed(Dense))"
    # each inline level named after its type, as in Keras' variable.path
    assert model.graph.weight_shapes() == {"a/time_distributed/dense/kernel": (5, 2),
                                           "a/time_distributed/dense/bias": (2,)}


@pytest.mark.parametrize("suffix, depth", [(".yaml", 120), (".yaml", 600), (".json", 3000)],
                         ids=["yaml-deep", "yaml-deeper-than-python-recurses", "json-deeper-than-python-recurses"])
def test_nesting_too_deep(tmp_path, suffix, depth):
    """3000 nested brackets overflowed the parsers' recursion: an internal error instead of a message."""
    if suffix == ".json":
        text = '{"specc": 1, "name": ' + "[" * depth + "]" * depth + "}"
    else:
        text = "specc: 1\nname: " + "[" * depth + "]" * depth + "\n"
    line, column = position(text, "[" * depth, offset=99)  # level 101: the spec is level 1
    (problem,) = problems_of(tmp_path, text, "spec" + suffix)
    assert problem.message == "lists and mappings nested more than 100 levels deep; a spec needs only a few"
    assert (problem.line, problem.column) == (line, column)


def test_aliases_that_expand_without_end(tmp_path):
    """Nine aliases of nine aliases of ... ('billion laughs'): validation ran for minutes and took gigabytes."""
    lines = ["specc: 1", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    text = "\n".join(lines) + "\n"
    (problem,) = problems_of(tmp_path, text)
    assert "YAML aliases (*name) expand this document to more than 200,000 values" in problem.message
    assert (problem.line, problem.column) == position(text, "f: &f")


# -- every problem at once: one check's problem does not hide another's ----------------------------------------

UNUSED = ("  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n",
          "  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n"
          "  extra: {type: Dense, units: 2, inputs: dense_1}\n")
LOOSE_CYCLE = ("  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n",
               "  aux_out: {type: Dense, units: 1, activation: sigmoid, inputs: dense_1}\n"
               "  loop_a: {type: Dense, units: 2, inputs: loop_b}\n"
               "  loop_b: {type: Dense, units: 2, inputs: loop_a}\n")
RANKS = [("units: 16, activation: relu", "units: 32, activation: relu"), ("aux: {shape: [4]}", "aux: {shape: [5, 2]}")]

# (id, edits, {dotted path: part of its message}): each spec has independent problems, and exactly these
SEVERAL = [
    ("cycle-no-input-reaches", [LOOSE_CYCLE],
     {"layers.loop_a.inputs": "inputs form a cycle: loop_a -> loop_b -> loop_a"}),
    ("cycle-and-unused-layer", [LOOSE_CYCLE, ("  dense_1: {type", "  spare: {type: Dense, units: 2, inputs: aux}\n"
                                                                   "  dense_1: {type")],
     {"layers.loop_a.inputs": "loop_a -> loop_b -> loop_a", "layers.spare": "'spare' reaches no output"}),
    ("concatenate-ranks-and-unused-layer", [*RANKS, UNUSED],
     {"layers.merged": "cannot concatenate tensors of different ranks", "layers.extra": "'extra' reaches no output"}),
    ("unused-input-and-shapes", [("  aux: {shape: [4]}\n", "  aux: {shape: [4]}\n  other: {shape: [3]}\n"),
                                 ("merged: {type: Concatenate,", "merged: {type: Add,")],
     {"inputs.other": "input 'other' does not reach any output",
      "layers.merged": "cannot add tensors of different shapes: (None, 16) and (None, 4)"}),
    ("unknown-tensor-and-shapes", [*RANKS, ("inputs: dense_1}\n\noutputs", "inputs: dense_l}\n\noutputs")],
     {"layers.aux_out.inputs": "unknown tensor 'dense_l'", "layers.merged": "different ranks"}),
    ("never-called-cycle-and-shapes",
     [*RANKS, LOOSE_CYCLE, ("  dense_2:\n", "  idle: {type: Dense, units: 4}\n  dense_2:\n")],
     {"layers.merged": "different ranks", "layers.loop_a.inputs": "loop_a -> loop_b -> loop_a",
      "layers.idle": "defined but never called"}),
    ("broken-layer-and-cycle", [LOOSE_CYCLE, ("sigmoid, inputs: dense_1}", "sigmoid, inputs: dense_1, unit: 3}")],
     {"layers.aux_out.unit": "unknown key 'unit'", "layers.loop_a.inputs": "loop_a -> loop_b -> loop_a"}),
]


@pytest.mark.parametrize("edits, expected", [pytest.param(*case[1:], id=case[0]) for case in SEVERAL])
def test_several_independent_problems_all_reported(tmp_path, edits, expected):
    problems = problems_of(tmp_path, edit(*edits))
    found = {dotted(p.path): p.message for p in problems}
    assert set(found) == set(expected), [str(p) for p in problems]
    for path, part in expected.items():
        assert part in found[path], found[path]
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_a_cycle_is_said_once_and_not_as_unreachable(tmp_path):
    (problem,) = problems_of(tmp_path, edit(LOOSE_CYCLE))
    assert problem.message == ("these layers' inputs form a cycle: loop_a -> loop_b -> loop_a; a layer cannot read "
                               "its own output")
    assert (problem.line, problem.column) == position(edit(LOOSE_CYCLE), "loop_b}")


def test_wrappers_wrapping_each_other_leave_the_other_shapes_checked(tmp_path):
    text = edit(*RANKS, ("  dense_2:\n", "  td_a: {type: TimeDistributed, layer: td_b, inputs: aux}\n"
                                         "  td_b: {type: TimeDistributed, layer: td_a}\n  dense_2:\n"))
    found = {dotted(p.path): p.message for p in problems_of(tmp_path, text)}
    assert "wrap each other in a cycle" in found["layers.td_a.layer"]
    assert "different ranks" in found["layers.merged"]
