"""Specs at the edges of scale: shapes beyond 64-bit integers, models too large for the machine's memory,
graphs of thousands of layers, and the names a `sequential:` list gives its layers."""
from __future__ import annotations

import textwrap

import pytest

import specc
from specc.graph.memory import memory_problem
from specc.runtime.heap import machine_memory, show_bytes
from specc.runtime.parameters import Parameters
from support import ROOT, run

HUGE = 2 ** 62  # a valid dimension whose square, and any product with it, overflows int64
COMPILE = "compile: {optimizer: adam, loss: mse}\n"


def write(tmp_path, text: str, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def position(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based line and column of the `occurrence`-th `needle` in text."""
    at = -1
    for _ in range(occurrence + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def dense_chain(count: int, units: int = 8, frozen_model: bool = False, outputs_first: bool = False) -> str:
    """A spec whose model is `count` Dense layers in a row; optionally a frozen sub-model in the middle, and
    the entries listed from the output back to the input."""
    entries, previous = [], "x"
    for i in range(count):
        entries.append(f"  d{i}: {{type: Dense, units: {units}, inputs: {previous}}}")
        previous = f"d{i}"
        if frozen_model and i == count // 2:
            entries.append(f"  frozen: {{call: tower, inputs: {previous}}}")
            previous = "frozen"
    models = (f"models:\n  tower:\n    input: {{shape: [{units}]}}\n    trainable: false\n"
              f"    sequential: [{{type: Dense, units: {units}}}, {{type: Dense, units: {units}}}]\n"
              if frozen_model else "")
    if outputs_first:
        entries.reverse()
    return (f"specc: 1\nname: chain\ninputs: {{x: {{shape: [{units}]}}}}\n{models}layers:\n"
            + "\n".join(entries) + f"\noutputs: [{previous}]\n" + COMPILE)


# -- shape arithmetic in Python integers ------------------------------------------------------------------

def test_flatten_of_huge_shape_is_exact(tmp_path):
    path = write(tmp_path, f"""\
        specc: 1
        name: huge
        inputs: {{x: {{shape: [{HUGE}, {HUGE}]}}}}
        layers:
          flat: {{type: Flatten, inputs: x}}
          out: {{type: Dense, units: {HUGE}, inputs: flat}}
        outputs: [out]
        """ + COMPILE)
    assert run("validate", path).returncode == 0
    graph = specc.load(path).graph
    assert graph.shapes["flat"] == (HUGE * HUGE,)
    assert graph.count_params() == HUGE * HUGE * HUGE + HUGE
    summary = run("summary", path).stdout
    assert f"(None, {HUGE * HUGE})" in summary
    assert f"Total params: {HUGE ** 3 + HUGE:,}" in summary


def test_weight_counts_of_huge_layers_are_exact(tmp_path):
    path = write(tmp_path, f"""\
        specc: 1
        name: huge
        inputs:
          ids: {{shape: [{HUGE}], dtype: int32}}
          steps: {{shape: [{HUGE}, {HUGE}]}}
        layers:
          embedded: {{type: Embedding, input_dim: {HUGE}, output_dim: {HUGE}, inputs: ids}}
          summary: {{type: LSTM, units: {HUGE}, inputs: steps}}
          flat: {{type: Flatten, inputs: embedded}}
          joined: {{type: Concatenate, inputs: [flat, summary]}}
          out: {{type: Dense, units: 1, inputs: joined}}
        outputs: [out]
        """ + COMPILE)
    assert run("validate", path).returncode == 0
    graph = specc.load(path).graph
    counts = {name: graph.layers[name].count_params() for name in ("embedded", "summary", "out")}
    assert counts == {"embedded": HUGE * HUGE,
                      "summary": HUGE * 4 * HUGE + HUGE * 4 * HUGE + 4 * HUGE,
                      "out": HUGE * HUGE + HUGE + 1}
    assert graph.count_params() == sum(counts.values())


# -- memory needed by a training step ---------------------------------------------------------------------

def test_training_step_bytes_follows_its_formula(tmp_path):
    graph = specc.load(write(tmp_path, """\
        specc: 1
        name: small
        inputs: {x: {shape: [6]}}
        layers:
          hidden: {type: Dense, units: 4, inputs: x}
          out: {type: Dense, units: 2, inputs: hidden}
        outputs: [out]
        """ + COMPILE)).graph
    weights = 6 * 4 + 4 + 4 * 2 + 2
    per_row = 6 + 2 * 4 + 2 * 2  # the input; each node's output and as much again for its backward
    assert graph.training_step_bytes(32) == 4 * (4 * weights + 32 * per_row)


def test_sub_models_count_once_per_call_and_per_step(tmp_path):
    graph = specc.load(write(tmp_path, """\
        specc: 1
        name: calls
        inputs: {x: {shape: [6]}, frames: {shape: [3, 6]}}
        models:
          tower:
            input: {shape: [6]}
            sequential: [{type: Dense, units: 4}, {type: Dense, units: 6}]
        layers:
          once: {call: tower, inputs: x}
          twice: {call: tower, inputs: once}
          per_frame: {type: TimeDistributed, layer: tower, inputs: frames}
          flat: {type: Flatten, inputs: per_frame}
          joined: {type: Concatenate, inputs: [twice, flat]}
          out: {type: Dense, units: 1, inputs: joined}
        outputs: [out]
        """ + COMPILE)).graph
    tower = 2 * 4 + 2 * 6
    per_row = (6 + 3 * 6) + tower + tower + 3 * tower + 2 * 18 + 2 * 24 + 2 * 1
    assert graph.values_kept_per_row() + 6 + 3 * 6 == per_row
    assert graph.training_step_bytes(1) == 4 * (4 * graph.count_params() + per_row)


def test_75_billion_parameters_are_refused_with_the_figures(tmp_path):
    path = write(tmp_path, """\
        specc: 1
        name: giant
        inputs: {x: {shape: [300000]}}
        layers:
          out: {type: Dense, units: 250000, inputs: x}
        outputs: [out]
        """ + COMPILE)
    assert run("validate", path).returncode == 0  # the spec itself is sound
    graph = specc.load(path).graph
    assert graph.count_params() == 75_000_250_000
    message = memory_problem(graph, 32, 23_500_000_000)
    assert message == ("a training step at batch size 32 needs about 1.2 TB of memory; "
                       "this machine has 23.5 GB")


def test_a_convolution_over_huge_images_is_refused(tmp_path):
    graph = specc.load(write(tmp_path, """\
        specc: 1
        name: wide
        inputs: {image: {shape: [20000, 20000, 3]}}
        layers:
          conv: {type: Conv2D, filters: 256, kernel_size: 3, padding: same, inputs: image}
          pool: {type: MaxPooling2D, pool_size: 100, inputs: conv}
          flat: {type: Flatten, inputs: pool}
          out: {type: Dense, units: 1, inputs: flat}
        outputs: [out]
        """ + COMPILE)).graph
    message = memory_problem(graph, 32, 64 * 10 ** 9)
    assert message is not None and "needs about 26.4 TB of memory; this machine has 64.0 GB" in message


@pytest.mark.parametrize("spec", ["digits.yaml", "headline.yaml", "shared_vision.yaml"])
def test_example_specs_fit(spec):
    graph = specc.load(ROOT / "specs" / spec).graph
    assert memory_problem(graph, 32, 4 * 10 ** 9) is None
    assert memory_problem(graph, 32, None) is None  # unknown memory: nothing to say


def test_machine_memory_and_sizes_shown():
    memory = machine_memory()
    assert memory is None or memory > 0
    assert [show_bytes(n) for n in (0, 999, 1000, 23_456_000_000, 10 ** 27)] == \
        ["0 B", "999 B", "1.0 kB", "23.5 GB", "1.0e+27 B"]
    assert show_bytes(HUGE ** 5).endswith(" B")  # beyond a float's range, still a figure


# -- thousands of layers ----------------------------------------------------------------------------------

def test_long_chain_with_a_frozen_sub_model(tmp_path):
    count, units = 3000, 4
    path = write(tmp_path, dense_chain(count, units, frozen_model=True))
    assert run("validate", path).returncode == 0
    dense, tower = units * units + units, 2 * (units * units + units)
    summary = run("summary", path).stdout
    assert f"Total params: {count * dense + tower:,}" in summary
    assert f"Trainable params: {count * dense:,}" in summary
    assert f"Non-trainable params: {tower:,}" in summary
    graph = specc.load(path).graph
    params = Parameters(graph)
    assert params.trainable_size == graph.count_params(trainable=True) == count * dense
    assert [key for key in params.shapes][-4:] == ["tower/dense/kernel", "tower/dense/bias",
                                                   "tower/dense_1/kernel", "tower/dense_1/bias"]


def test_chain_listed_from_its_output_back_compiles_in_order(tmp_path):
    """As deep as it is long: ordering the entries must not recurse once per layer."""
    count = 3000
    forward = specc.load(write(tmp_path, dense_chain(count), "forward.yaml")).graph
    backward = specc.load(write(tmp_path, dense_chain(count, outputs_first=True), "backward.yaml")).graph
    assert [node.output for node in backward.nodes] == [node.output for node in forward.nodes] == \
        [f"d{i}" for i in range(count)]


def test_many_layers_defined_then_called(tmp_path):
    count = 2000
    defined = [f"  layer_{i}: {{type: Dense, units: 4}}" for i in range(count)]
    calls = [f"  call_{i}: {{call: layer_{i}, inputs: {'x' if i == 0 else f'call_{i - 1}'}}}" for i in range(count)]
    spare = "  spare: {type: Dense, units: 4}"
    text = ("specc: 1\nname: defined\ninputs: {x: {shape: [4]}}\nlayers:\n" + "\n".join([*defined, spare, *calls])
            + f"\noutputs: [call_{count - 1}]\n" + COMPILE)
    result = run("validate", write(tmp_path, text))
    assert result.returncode == 1
    assert result.stderr.count("is defined but never called") == 1
    assert "layers.spare: layer 'spare' is defined but never called" in result.stderr


def test_wrappers_leading_into_a_cycle_report_it_once_at_its_first_member(tmp_path):
    path = write(tmp_path, """\
        specc: 1
        name: cycle
        inputs: {x: {shape: [3, 4]}}
        layers:
          lead: {type: TimeDistributed, layer: td_a, inputs: x}
          td_b: {type: TimeDistributed, layer: td_a}
          td_a: {type: TimeDistributed, layer: td_b}
        outputs: [lead]
        """ + COMPILE)
    result = run("validate", path)
    assert result.returncode == 1
    assert result.stderr.count("wrap each other in a cycle") == 1
    assert "layers.td_b.layer: TimeDistributed layers wrap each other in a cycle: td_b -> td_a -> td_b" \
        in result.stderr


# -- names in a sequential list ---------------------------------------------------------------------------

def test_automatic_names_skip_the_names_given(tmp_path):
    model = specc.load(write(tmp_path, """\
        specc: 1
        name: names
        inputs: {x: {shape: [6]}}
        models:
          stack:
            input: {shape: [6]}
            sequential:
              - {type: Dense, units: 5, name: dense_1}
              - {type: Dense, units: 4}
              - {type: Dense, units: 3}
              - {type: Dense, units: 2, name: dense}
        layers:
          out: {call: stack, inputs: x}
        outputs: [out]
        """ + COMPILE))
    shapes = model.graph.weight_shapes()
    kernels = {key.rsplit("/", 1)[0]: shape for key, shape in shapes.items() if key.endswith("/kernel")}
    assert kernels == {"stack/dense_1": (6, 5), "stack/dense_2": (5, 4), "stack/dense_3": (4, 3),
                       "stack/dense": (3, 2)}
    assert model.graph.shapes["out"] == (2,)


def test_a_name_given_twice_is_located_at_the_second(tmp_path):
    text = textwrap.dedent("""\
        specc: 1
        name: names
        inputs: {x: {shape: [6]}}
        models:
          stack:
            input: {shape: [6]}
            sequential:
              - {type: Dense, units: 5, name: hidden}
              - {type: Dense, units: 4}
              - {type: Dense, units: 3, name: hidden}
        layers:
          out: {call: stack, inputs: x}
        outputs: [out]
        """) + COMPILE
    path = write(tmp_path, text)
    result = run("validate", path)
    assert result.returncode == 1
    line, column = position(text, "hidden", 1)
    assert result.stderr.splitlines()[0] == (f"{path}:{line}:{column}: models.stack.sequential[2].name: "
                                             "layer name 'hidden' is already used by sequential[0]")
    assert "1 problem(s)" in result.stderr


def test_a_layer_named_like_the_input_is_located(tmp_path):
    text = textwrap.dedent("""\
        specc: 1
        name: names
        inputs: {x: {shape: [6]}}
        models:
          stack:
            input: {shape: [6]}
            sequential: [{type: Dense, units: 4, name: input}]
        layers:
          out: {call: stack, inputs: x}
        outputs: [out]
        """) + COMPILE
    path = write(tmp_path, text)
    result = run("validate", path)
    assert result.returncode == 1
    line, column = position(text, "input}")
    assert result.stderr.splitlines()[0].startswith(f"{path}:{line}:{column}: models.stack.sequential[0].name: "
                                                    "'input' is the name of the model's input")


def test_train_refuses_a_step_that_cannot_fit_before_writing_anything(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("specc: 1\ninputs: {x: {shape: [300000]}}\nlayers:\n  y: {type: Dense, units: 250000, inputs: x}\n"
                    "outputs: [y]\ncompile: {loss: mse}\ndata: {train: absent.npz}\nfit: {batch_size: 64}\n")
    out = tmp_path / "run"
    result = run("train", spec, "--out", out)
    assert result.returncode == 1
    assert f"{spec}:8:19: fit.batch_size: a training step at batch size 64 needs about 1.2 TB of memory" \
        in result.stderr
    assert "pass --force to train anyway" in result.stderr and not out.exists()
    forced = run("train", spec, "--out", out, "--force")  # past the check: on to the data, which is missing
    assert forced.returncode == 1 and "absent.npz" in forced.stderr and "needs about" not in forced.stderr
