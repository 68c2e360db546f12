"""Export to ONNX: every layer type's cases (tests/layer_cases) and every shipped spec, exported and run by
onnxruntime, give specc's predictions at batch 1 and 32; the model passes onnx.checker and carries the
spec's names, a dynamic batch axis and its metadata."""
from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from layer_cases import LAYER_CASES
from test_layer_vocabulary import random_inputs, random_parameters, write_spec
from test_specs import TRAINED_FIRST, shrunk_copy

import specc
from specc.layers import LAYERS
from support import run

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from specc.onnx.errors import ExportError  # noqa: E402  (needs onnx)
from specc.onnx.export import export_onnx  # noqa: E402
from specc.onnx.ops import OPS, WRAPPERS  # noqa: E402

SPECS = Path(__file__).parent.parent / "specs"
ALL_CASES = [pytest.param(c, id=c.id) for cases in LAYER_CASES.values() for c in cases]


def session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def assert_same_predictions(model, path: Path, seed: int = 0):
    """onnxruntime on the exported model against model.predict, batch 1 and 32."""
    runner = session(path)
    for rows in (1, 32):
        inputs = random_inputs(model.graph, rows, np.random.default_rng(seed + rows), np.float32)
        ours = model.predict(inputs, batch_size=rows)
        theirs = runner.run(None, inputs)
        for name, value in zip([o.name for o in runner.get_outputs()], theirs):
            assert value.shape == ours[name].shape, name
            np.testing.assert_allclose(value, ours[name], rtol=2e-4, atol=2e-5, err_msg=f"{name} at batch {rows}")


def test_every_layer_type_has_an_onnx_form():
    missing = sorted(set(LAYERS) - set(OPS) - set(WRAPPERS))
    assert not missing, f"layer types without an ONNX form: {missing}"
    assert not set(OPS) - set(LAYERS), "ONNX forms of types that are not registered"


@pytest.mark.parametrize("case", ALL_CASES)
def test_layer_exports(case, tmp_path):
    model = specc.load(write_spec(tmp_path, case))
    model._params = random_parameters(model.graph, np.float32, seed=2)
    export_onnx(model, tmp_path / "model.onnx")
    assert_same_predictions(model, tmp_path / "model.onnx")


@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*.yaml")))
def test_shipped_spec_exports(name, tmp_path, monkeypatch):
    """Sub-models, shared layers, wrappers and several inputs and outputs, at the reduced sizes the spec
    tests train at, with their initial weights (random ones blow deep models' activations up to where
    float32 rounding decides a softmax)."""
    folder = shrunk_copy(tmp_path)
    monkeypatch.chdir(folder)
    for spec_name in [TRAINED_FIRST.get(name), name]:
        if spec_name is not None:
            model = specc.load(folder / f"{spec_name}.yaml")
            model.save_weights(tmp_path / "runs" / spec_name / "weights.npz")
    export_onnx(model, tmp_path / "model.onnx")
    assert_same_predictions(model, tmp_path / "model.onnx")


def test_names_batch_axis_and_metadata(tmp_path):
    model = specc.load(SPECS / "headline.yaml")
    proto = export_onnx(model, tmp_path / "model.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")), full_check=True)
    assert [i.name for i in proto.graph.input] == list(model.graph.inputs)
    assert [o.name for o in proto.graph.output] == model.graph.outputs
    for value in [*proto.graph.input, *proto.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert max(o.version for o in proto.opset_import if o.domain == "") >= 17
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["specc.spec_name"] == model.name
    assert metadata["specc.version"] == importlib.metadata.version("specc")
    assert json.loads(metadata["specc.input_dtypes"]) == model.graph.input_dtypes
    weights = sum(v.size for v in model.get_weights().values())
    assert sum(np.prod(t.dims) for t in proto.graph.initializer) >= weights


def test_shared_layer_weights_are_stored_once(tmp_path):
    model = specc.load(SPECS / "shared_lstm.yaml")
    proto = export_onnx(model, tmp_path / "model.onnx")
    kernels = [t.name for t in proto.graph.initializer if t.name.endswith("/kernel:onnx")]
    assert len(kernels) == len(set(kernels)) == 1, kernels


def test_a_type_without_onnx_form_is_named(tmp_path, monkeypatch):
    monkeypatch.delitem(OPS, "Dense")
    model = specc.load(SPECS / "dense.yaml")
    with pytest.raises(ExportError, match=r"is a Dense, which has no ONNX form"):
        export_onnx(model, tmp_path / "model.onnx")


def test_recurrent_activation_without_onnx_form(tmp_path):
    case = LAYER_CASES["LSTM"][0]
    entry = {**case.entry, "activation": "selu"}
    model = specc.load(write_spec(tmp_path, type(case)(entry, case.shapes)))
    with pytest.raises(ExportError, match=r"LSTM with activation 'selu' has no ONNX form"):
        export_onnx(model, tmp_path / "model.onnx")


@pytest.mark.parametrize("activation", ["hard_sigmoid", "linear", "elu", "softplus"])
def test_lstm_activations_with_parameters(activation, tmp_path):
    case = LAYER_CASES["LSTM"][0]
    entry = {**case.entry, "recurrent_activation": activation, "activation": "softsign"}
    model = specc.load(write_spec(tmp_path, type(case)(entry, case.shapes)))
    model._params = random_parameters(model.graph, np.float32, seed=4)
    export_onnx(model, tmp_path / "model.onnx")
    assert_same_predictions(model, tmp_path / "model.onnx")


def test_export_command(tmp_path):
    model = specc.load(SPECS / "dense.yaml")
    model._params = random_parameters(model.graph, np.float32, seed=5)
    model.save_weights(tmp_path / "weights.npz")
    result = run("export", SPECS / "dense.yaml", "--weights", tmp_path / "weights.npz", "-o", tmp_path / "m.onnx")
    assert result.returncode == 0, result.stderr
    assert_same_predictions(model, tmp_path / "m.onnx")


def test_export_command_names_what_has_no_onnx_form(tmp_path, monkeypatch):
    monkeypatch.delitem(OPS, "Dense")
    result = run("export", SPECS / "dense.yaml", "-o", tmp_path / "m.onnx")
    assert result.returncode == 1
    assert "is a Dense, which has no ONNX form" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_export_command_without_onnx_says_what_to_install(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "onnx" or m.startswith(("onnx.", "specc.onnx"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx fails
    result = run("export", SPECS / "dense.yaml", "-o", tmp_path / "m.onnx")
    assert result.returncode == 1
    assert "pip install 'specc[onnx]'" in result.stderr


@pytest.mark.parametrize("rnn", ["LSTM", "GRU", "SimpleRNN"])
def test_states_between_recurrent_layers(rnn, tmp_path):
    """An encoder read backwards hands its final states to a decoder (initial_state); the states are outputs."""
    states = ["encoder.1", "encoder.2"] if rnn == "LSTM" else ["encoder.1"]
    spec = {"specc": 1, "name": "seq2seq", "inputs": {"enc_in": {"shape": [5, 3]}, "dec_in": {"shape": [4, 2]}},
            "layers": {
                "encoder": {"type": rnn, "units": 3, "return_state": True, "go_backwards": True, "inputs": "enc_in"},
                "decoder": {"type": rnn, "units": 3, "return_sequences": True, "inputs": "dec_in",
                            "initial_state": states},
                "out": {"type": "Dense", "units": 2, "activation": "softmax", "inputs": "decoder"}},
            "outputs": ["out", *states], "compile": {"loss": "mse"}}
    path = tmp_path / "seq2seq.yaml"
    path.write_text(json.dumps(spec))
    model = specc.load(path)
    model._params = random_parameters(model.graph, np.float32, seed=6)
    export_onnx(model, tmp_path / "model.onnx")
    assert_same_predictions(model, tmp_path / "model.onnx")


def masked_spec(tmp_path, layers: dict, outputs: list, inputs: dict) -> Path:
    spec = {"specc": 1, "name": "masked", "inputs": inputs, "layers": layers, "outputs": outputs,
            "compile": {"loss": "mse"}}
    path = tmp_path / "masked.yaml"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("rnn", ["LSTM", "GRU", "SimpleRNN"])
def test_masked_sequences(rnn, go_backwards, tmp_path):
    """Ids 0 (a third of them, anywhere in a row) are padding: the recurrent layer carries its state over them."""
    path = masked_spec(tmp_path, {
        "embedded": {"type": "Embedding", "input_dim": 3, "output_dim": 4, "mask_zero": True, "inputs": "ids"},
        "encoded": {"type": rnn, "units": 3, "go_backwards": go_backwards, "inputs": "embedded"}},
        ["encoded"], {"ids": {"shape": [6], "dtype": "int32"}})
    model = specc.load(path)
    model._params = random_parameters(model.graph, np.float32, seed=7)
    export_onnx(model, tmp_path / "model.onnx")
    assert_same_predictions(model, tmp_path / "model.onnx")


def test_masking_then_average_and_recurrence(tmp_path):
    path = masked_spec(tmp_path, {
        "masked": {"type": "Masking", "mask_value": 0.0, "inputs": "x"},
        "mean": {"type": "GlobalAveragePooling1D", "inputs": "masked"},
        "encoded": {"type": "LSTM", "units": 3, "inputs": "masked"}},
        ["mean", "encoded"], {"x": {"shape": [5, 2]}})
    model = specc.load(path)
    model._params = random_parameters(model.graph, np.float32, seed=8)
    export_onnx(model, tmp_path / "model.onnx")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, 5, 2)).astype(np.float32)
    x[rng.random((32, 5)) < 0.4] = 0.0  # padding steps, anywhere
    ours = model.predict(x, batch_size=32)
    theirs = dict(zip(["mean", "encoded"], session(tmp_path / "model.onnx").run(["mean", "encoded"], {"x": x})))
    for name in ours:
        np.testing.assert_allclose(theirs[name], ours[name], rtol=2e-4, atol=2e-5, err_msg=name)


def test_a_masked_sequence_returned_is_refused(tmp_path):
    path = masked_spec(tmp_path, {
        "embedded": {"type": "Embedding", "input_dim": 10, "output_dim": 4, "mask_zero": True, "inputs": "ids"},
        "encoded": {"type": "LSTM", "units": 3, "return_sequences": True, "inputs": "embedded"}},
        ["encoded"], {"ids": {"shape": [6], "dtype": "int32"}})
    with pytest.raises(ExportError, match=r"layer 'encoded': LSTM with return_sequences on a masked sequence has "
                                          r"no ONNX form yet"):
        export_onnx(specc.load(path), tmp_path / "model.onnx")
