"""`specc export` to Keras 3 and `specc import` back: the Keras model computes what specc computes, for every
layer type and every spec in specs/; Keras models built here come back as specs of the same parameters and
predictions; every loss, metric, optimizer and callback has its Keras counterpart. Skipped without Keras."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from layer_cases import LAYER_CASES
from test_layer_vocabulary import random_inputs, random_parameters, write_spec

import specc
from specc.layers import LAYERS
from specc.synth import synthesize
from specc.train.callbacks import CALLBACKS
from specc.train.losses import LOSSES
from specc.train.metrics import METRICS
from specc.train.optimizers import OPTIMIZERS
from support import DIGITS, run

SPECS = Path(__file__).parents[1] / "specs"
NEEDS_OTHER_RUNS = {"video_qa"}  # imports weights a run of vqa.yaml writes


@pytest.fixture(scope="module")
def k(keras):
    """The export and import modules (Keras is imported by the `keras` fixture first, on its backend)."""
    from specc.keras import export, importer
    return export, importer


def keras_outputs(net, inputs: list[np.ndarray]) -> list[np.ndarray]:
    given = inputs
    out = net(given[0] if len(given) == 1 else given, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def assert_same_predictions(model, net, inputs, rtol=2e-4, atol=2e-5):
    ours = model.predict(inputs)
    in_order = [inputs[name] for name in model.graph.inputs]  # the Keras model's inputs, in that order
    for output, theirs in zip(model.graph.outputs, keras_outputs(net, in_order)):
        np.testing.assert_allclose(ours[output], theirs, rtol=rtol, atol=atol, err_msg=output)


def exported(export, model, compiled: bool = True):
    """The Keras model; the test is skipped where it needs Keras-Hub and that is not installed."""
    from specc.keras import KerasMissing
    try:
        return export.keras_model(model, compiled=compiled)
    except KerasMissing as e:
        pytest.skip(str(e))


# -- every layer type -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_type_exports_and_imports(name, k, tmp_path):
    """Export a spec around the layer (its first case) with weights off their initial values: Keras predicts
    the same; the imported spec has the same weights under the same keys."""
    if name not in LAYER_CASES:  # test_layer_vocabulary fails for it
        pytest.skip(f"{name} has no case in tests/layer_cases")
    export, importer = k
    case = LAYER_CASES[name][0]
    model = specc.load(write_spec(tmp_path, case))
    params = random_parameters(model.graph, np.float32, seed=1)
    model.params.values[...] = params.values
    net = exported(export, model, compiled=False)
    inputs = random_inputs(model.graph, rows=3, rng=np.random.default_rng(1), dtype=np.float32)
    assert_same_predictions(model, net, inputs)

    spec = tmp_path / "imported.yaml"
    spec.write_text(yaml.safe_dump(importer.spec_of(net), sort_keys=False))
    back = specc.load(spec)
    weights = export.get_weights(back.graph, net)
    assert set(weights) == set(model.get_weights())
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(weights[key], value, err_msg=key)


# -- the specs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", sorted(p.stem for p in SPECS.glob("*.yaml") if p.stem not in NEEDS_OTHER_RUNS))
def test_spec_exports_with_the_same_predictions(spec, k):
    export, _ = k
    model = specc.load(SPECS / f"{spec}.yaml")
    net = exported(export, model)
    assert net.count_params() == model.count_params()
    arrays = synthesize(model.graph, model.losses(), rows=2, seed=1)
    assert_same_predictions(model, net, {n: arrays[n] for n in model.graph.inputs}, rtol=1e-3, atol=1e-4)


def test_export_command_writes_a_compiled_keras_model(keras, tmp_path):
    out = tmp_path / "digits.keras"
    result = run("export", DIGITS, "-o", out)
    assert result.returncode == 0, result.stderr
    net = keras.saving.load_model(out)
    model = specc.load(DIGITS)
    assert [layer.name for layer in net.layers] == ["images", *model.graph.layers]
    assert type(net.optimizer).__name__.lower() == model.spec.compile.optimizer.type
    rows = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(net(rows)), model.predict(rows)["digit"], rtol=1e-5, atol=1e-6)


def test_export_refuses_unknown_suffixes(tmp_path):
    result = run("export", DIGITS, "-o", tmp_path / "model.h5")
    assert result.returncode == 2 and ".keras" in result.stderr


# -- import ---------------------------------------------------------------------------------------------------

def imported(keras, net, tmp_path: Path):
    """`specc import` of the saved model: the spec loaded with the weights it wrote."""
    net.save(tmp_path / "model.keras")
    result = run("import", tmp_path / "model.keras", "-o", tmp_path / "spec.yaml", "--weights-out", tmp_path / "w.npz")
    assert result.returncode == 0, result.stderr
    model = specc.load(tmp_path / "spec.yaml")
    model.load_weights(tmp_path / "w.npz")
    return model


def keras_models(keras):
    L = keras.layers
    sequential = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu", name="hidden"),
                                   L.Dropout(0.5), L.Dense(2, activation="softmax")], name="stack")

    a, b = keras.Input((4, 3), name="a"), keras.Input((4, 3), name="b")
    shared = L.LSTM(5, name="shared")
    merged = L.Concatenate(name="merged")([shared(a), shared(b)])
    shared_lstm = keras.Model([a, b], [L.Dense(1, activation="sigmoid", name="same")(merged),
                                       L.Dense(3, name="extra")(merged)], name="twins")

    digit = keras.Input((6, 6, 1), name="digit")
    x = L.Conv2D(4, 3, name="conv", kernel_initializer="he_normal")(digit)
    vision = keras.Model(digit, L.Flatten(name="flat")(L.MaxPooling2D(2, name="pool")(x)), name="vision")
    vision.trainable = False
    left, right = keras.Input((6, 6, 1), name="left"), keras.Input((6, 6, 1), name="right")
    nested = keras.Model([left, right], L.Dense(1, name="out")(L.Add(name="sum")([vision(left), vision(right)])),
                         name="nested")

    frames = keras.Input((3, 5), name="frames")
    video = keras.Model(frames, L.TimeDistributed(L.Dense(2), name="td")(frames), name="video")
    return {"sequential": sequential, "shared_lstm": shared_lstm, "nested": nested, "video": video}


def names(net) -> list[str]:
    return [layer.name for layer in net.layers if type(layer).__name__ != "InputLayer"]


@pytest.mark.parametrize("which", ["sequential", "shared_lstm", "nested", "video"])
def test_import_gives_the_same_model(which, keras, k, tmp_path):
    export, _ = k
    net = keras_models(keras)[which]
    net.compile(optimizer="adam", loss="mse")
    model = imported(keras, net, tmp_path)
    assert model.count_params() == net.count_params()
    assert model.graph.count_params(trainable=True) == sum(int(np.prod(v.shape)) for v in net.trainable_weights)
    rng = np.random.default_rng(0)
    inputs = {name: rng.normal(size=(2, *shape)).astype(np.float32) for name, shape in model.graph.inputs.items()}
    assert_same_predictions(model, net, inputs)
    again = export.keras_model(model)  # and exported again: the same model
    assert names(again) == names(net)
    assert_same_predictions(model, again, inputs)


def test_import_names_a_layer_specc_does_not_have(keras, tmp_path):
    x = keras.Input((3,), name="x")
    net = keras.Model(x, keras.layers.Dense(2, name="d")(keras.layers.Lambda(lambda t: t * 2, name="twice")(x)))
    net.save(tmp_path / "lambda.keras")
    result = run("import", tmp_path / "lambda.keras", "-o", tmp_path / "spec.yaml")
    assert result.returncode == 1
    assert "layer 'twice'" in result.stderr and "Lambda" in result.stderr
    assert not (tmp_path / "spec.yaml").exists()


# -- every loss, metric, optimizer and callback ------------------------------------------------------------

REQUIRED = {"num_classes": 3, "target_class_ids": [0, 2]}  # arguments some metrics must be given


@pytest.mark.parametrize("registry,make", [(LOSSES, "keras_loss"), (METRICS, "keras_metric"),
                                           (OPTIMIZERS, "keras_optimizer")], ids=["losses", "metrics", "optimizers"])
def test_every_entry_has_its_keras_class(registry, make, k, keras):
    export, _ = k
    for name in registry:
        required = {k: REQUIRED[k] for k, field in registry[name].model_fields.items() if field.is_required()
                    and k != "type"}
        config = registry.make(name, **required)
        made = getattr(export, make)(keras, config, name) if make == "keras_metric" else \
            getattr(export, make)(keras, config)
        assert type(made).__name__ == type(config).__name__, name


def test_every_callback_has_its_keras_callback(keras):
    from specc.keras.engine import keras_callback
    for name in CALLBACKS:
        assert isinstance(keras_callback(CALLBACKS.make(name), None), keras.callbacks.Callback), name


# -- without Keras -------------------------------------------------------------------------------------------

WITHOUT_KERAS = """\
import sys
sys.modules["keras"] = None  # as if it were not installed: importing it raises ImportError
from specc.cli import main
main(sys.argv[1:])
"""


def test_without_keras_the_commands_say_what_to_install(tmp_path):
    for args in (["export", DIGITS, "-o", tmp_path / "m.keras"], ["train", DIGITS, "--engine", "keras"]):
        result = subprocess.run([sys.executable, "-c", WITHOUT_KERAS, *map(str, args)], capture_output=True,
                                text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert "pip install 'specc[keras]'" in result.stderr, result.stderr


def test_read_only_commands_and_the_numba_engine_never_import_keras(tmp_path):
    code = """\
import sys
from specc.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("keras imported:", "keras" in sys.modules)
"""
    for args in (["validate", DIGITS], ["summary", DIGITS], ["render", DIGITS],
                 ["train", DIGITS, "--epochs", "1", "--out", tmp_path / "run", "--quiet"]):
        result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                                cwd=tmp_path, timeout=300)
        assert result.stdout.splitlines()[-1] == "keras imported: False", (args, result.stdout, result.stderr)
    # the control: export does import it, so the check above can tell
    result = subprocess.run([sys.executable, "-c", code, "export", DIGITS, "-o", tmp_path / "m.keras"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.stdout.splitlines()[-1] == "keras imported: True", (result.stdout, result.stderr)
