"""specc's weights files load into the same model written with Keras, which then predicts what specc does.

Runs where Keras and one of its backends are installed (the optional `bench` extra); skipped elsewhere.
The Keras models are written as the guide writes them, with the spec's layer names, and take their weights
by name from specc's weights file ("<layer>/<weight>", "<model>/<layer>/<weight>" inside a sub-model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import specc
from specc.synth import synthesize
from support import import_keras

SPECS = Path(__file__).parents[1] / "specs"


@pytest.fixture(scope="module")
def keras():
    return import_keras()


def headline(keras):
    L = keras.layers
    main_input = keras.Input((100,), dtype="int32", name="main_input")
    aux_input = keras.Input((5,), name="aux_input")
    x = L.Embedding(10000, 512, name="embedding")(main_input)
    lstm = L.LSTM(32, name="lstm")(x)
    aux_output = L.Dense(1, activation="sigmoid", name="aux_output")(lstm)
    x = L.Concatenate(name="merged")([lstm, aux_input])
    for name in ("dense_1", "dense_2", "dense_3"):
        x = L.Dense(64, activation="relu", name=name)(x)
    main_output = L.Dense(1, activation="sigmoid", name="main_output")(x)
    return keras.Model([main_input, aux_input], [main_output, aux_output])


def shared_vision(keras):
    L = keras.layers
    digit_input = keras.Input((27, 27, 1), name="digit_input")
    x = L.Conv2D(64, 3, name="conv_1")(digit_input)
    x = L.Conv2D(64, 3, name="conv_2")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    vision_model = keras.Model(digit_input, L.Flatten(name="out")(x), name="vision_model")
    digit_a, digit_b = keras.Input((27, 27, 1), name="digit_a"), keras.Input((27, 27, 1), name="digit_b")
    merged = L.Concatenate(name="merged")([vision_model(digit_a), vision_model(digit_b)])
    return keras.Model([digit_a, digit_b], L.Dense(1, activation="sigmoid", name="same")(merged))


def digits(keras):
    L = keras.layers
    images = keras.Input((8, 8), name="images")
    x = L.Flatten(name="pixels")(images)
    x = L.Dense(64, activation="relu", name="scaled")(x)
    x = L.Dense(64, activation="relu", name="hidden")(x)
    return keras.Model(images, L.Dense(10, activation="softmax", name="digit")(x))


def load_by_name(model, arrays: dict, prefix: str = ""):
    """Set every Keras layer's weights from specc's arrays, each looked up by its specc key."""
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a sub-model: its layers are keyed under its name
            load_by_name(layer, arrays, f"{prefix}{layer.name}/")
        elif layer.weights:
            layer.set_weights([arrays.pop(f"{prefix}{layer.name}/{w.path.split('/')[-1]}") for w in layer.weights])


@pytest.mark.parametrize("spec, build", [("digits", digits), ("headline", headline),
                                         ("shared_vision", shared_vision)])
def test_keras_model_with_specc_weights_predicts_the_same(keras, tmp_path, spec, build):
    model = specc.load(SPECS / f"{spec}.yaml")
    data = synthesize(model.graph, model.losses(), rows=16, seed=1)
    inputs = {name: data[name] for name in model.graph.inputs}
    model.fit(epochs=1, batch_size=8, data=(specc_dataset(model, data), None))  # weights that are not the init
    model.save_weights(tmp_path / "weights.npz")

    theirs = build(keras)
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as saved:
        arrays = dict(saved)
    load_by_name(theirs, arrays)
    assert arrays == {}, f"weights Keras did not take: {sorted(arrays)}"
    given = [inputs[i.name] for i in theirs.inputs]
    predicted = theirs.predict(given if len(given) > 1 else given[0], verbose=0)
    predicted = predicted if isinstance(predicted, list) else [predicted]
    ours = model.predict(inputs)
    for name, values in zip(model.graph.outputs, predicted):
        np.testing.assert_allclose(ours[name], keras.ops.convert_to_numpy(values), rtol=2e-4, atol=2e-5)


def specc_dataset(model, data):
    from specc.io.data import Dataset
    return Dataset({n: data[n] for n in model.graph.inputs}, {n: data[n] for n in model.graph.outputs})
