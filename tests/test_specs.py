"""Every example spec validates, summarizes with Keras' parameter counts, trains a step and predicts."""
import re
from pathlib import Path

import numpy as np
import pytest

import specc
from specc.synth import synthesize

SPECS = Path(__file__).parent.parent / "specs"
ALL = sorted(p.stem for p in SPECS.glob("*.yaml"))


def dense(inputs, units):
    return inputs * units + units


def lstm(inputs, units):
    return 4 * units * (inputs + units + 1)


def gru(inputs, units):  # reset_after (Keras 3's default): an input and a recurrent bias
    return 3 * units * (inputs + units) + 2 * 3 * units


def conv(kernel, channels, filters):
    return kernel * kernel * channels * filters + filters


def conv1d(kernel, channels, filters):
    return kernel * channels * filters + filters


def separable(kernel, channels, filters):
    return kernel * kernel * channels + channels * filters + filters


def batch_norm(channels):  # gamma and beta, and the moving mean and variance (not trainable)
    return 4 * channels


def xception_block(channels, size):
    return (separable(3, channels, size) + separable(3, size, size) + 2 * batch_norm(size)
            + conv(1, channels, size))


# Keras' model.count_params() for the same models, written out layer by layer.
KERAS_PARAMS = {
    "digits": dense(64, 64) + dense(64, 64) + dense(64, 10),
    "dense": dense(784, 64) + dense(64, 64) + dense(64, 10),
    "time_distributed": dense(784, 64) + dense(64, 64) + dense(64, 10),
    "headline": 10000 * 512 + lstm(512, 32) + dense(32, 1) + dense(37, 64) + 2 * dense(64, 64) + dense(64, 1),
    "shared_lstm": lstm(256, 64) + dense(128, 1),
    "layer_nodes": conv(3, 3, 16) + dense(32 * 32 * 16 * 2, 1),
    "inception": conv(1, 3, 64) + conv(3, 64, 64) + conv(1, 3, 64) + conv(5, 64, 64) + conv(1, 3, 64)
                 + dense(16 * 16 * 192, 10),
    "residual": conv(3, 3, 3),
    "shared_vision": conv(3, 1, 64) + conv(3, 64, 64) + dense(2 * 11 * 11 * 64, 1),
    "vqa": (conv(3, 3, 64) + conv(3, 64, 64) + conv(3, 64, 128) + conv(3, 128, 128) + conv(3, 128, 256)
            + 2 * conv(3, 256, 256)) + 10000 * 256 + lstm(256, 256) + dense(256 + 25 * 25 * 256, 1000),
    "video_qa": (conv(3, 3, 64) + conv(3, 64, 64) + conv(3, 64, 128) + conv(3, 128, 128) + conv(3, 128, 256)
                 + 2 * conv(3, 256, 256)) + lstm(25 * 25 * 256, 256) + 10000 * 256 + lstm(256, 256)
                + dense(512, 1000),
    "digits_convnet": conv(3, 1, 16) + batch_norm(16) + dense(4 * 4 * 16, 64) + batch_norm(64) + dense(64, 10),
    # keras.io examples
    "mnist_convnet": conv(3, 1, 32) + conv(3, 32, 64) + dense(5 * 5 * 64, 10),
    "text_classifier": 20000 * 128 + 2 * conv1d(7, 128, 128) + dense(128, 128) + dense(128, 1),
    "timeseries_fcn": conv1d(3, 1, 64) + 2 * conv1d(3, 64, 64) + 3 * batch_norm(64) + dense(64, 2),
    "mini_xception": (conv(3, 3, 128) + batch_norm(128) + xception_block(128, 256) + xception_block(256, 512)
                      + xception_block(512, 728) + separable(3, 728, 1024) + batch_norm(1024) + dense(1024, 1)),
    "conv_autoencoder": conv(3, 1, 32) + conv(3, 32, 32) + 2 * conv(3, 32, 32) + conv(3, 32, 1),
    "fraud_detection": dense(30, 256) + 2 * dense(256, 256) + dense(256, 1),
    "bidirectional_imdb": 20000 * 128 + 2 * lstm(128, 64) + 2 * lstm(2 * 64, 64) + dense(2 * 64, 1),
    "lstm_seq2seq": lstm(71, 256) + lstm(93, 256) + dense(256, 93),
    "masked_gru": 5000 * 16 + gru(16, 32) + dense(32, 1),
    # MultiHeadAttention: query, key and value kernels (features, heads, key_dim) and biases (heads, key_dim),
    # the output kernel (heads, key_dim, features) and bias; LayerNormalization: gamma and beta
    "transformer_classifier": 20000 * 32 + 200 * 32 + 3 * (32 * 2 * 32 + 2 * 32) + (2 * 32 * 32 + 32)
                              + 2 * (2 * 32) + dense(32, 32) + dense(32, 32) + dense(32, 20) + dense(20, 2),
    "timeseries_transformer": 4 * (2 * (2 * 1) + 3 * (1 * 4 * 256 + 4 * 256) + (4 * 256 * 1 + 1)
                                   + conv1d(1, 1, 4) + conv1d(1, 4, 1)) + dense(500, 128) + dense(128, 2),
}
# Keras' "Non-trainable params" where a model has any
KERAS_NON_TRAINABLE = {"digits_convnet": 2 * (16 + 64), "timeseries_fcn": 3 * 2 * 64,
                       "video_qa": 10000 * 256 + lstm(256, 256),  # its frozen question encoder
                       "mini_xception": 2 * (128 + 2 * (256 + 512 + 728) + 1024)}

# Sizes too slow for a test step are shrunk (images, frames); everything else runs as written.
SMALLER = {
    "inception": [("[256, 256, 3]", "[32, 32, 3]"), ("pool_size: 16", "pool_size: 2")],
    "residual": [("[256, 256, 3]", "[32, 32, 3]")],
    "vqa": [("[224, 224, 3]", "[40, 40, 3]")],
    "video_qa": [("[100, 224, 224, 3]", "[3, 40, 40, 3]")],
    "mini_xception": [("[180, 180, 3]", "[24, 24, 3]")],
    "timeseries_transformer": [("[500, 1]", "[40, 1]"), ("batch_size: 64", "batch_size: 8")],
    "bidirectional_imdb": [("[200]", "[20]")],
    "lstm_seq2seq": [("[16, 71]", "[6, 71]"), ("[59, 93]", "[8, 93]"), ("batch_size: 64", "batch_size: 8")],
    "masked_gru": [("[200]", "[30]")],
}
TRAINED_FIRST = {"video_qa": "vqa"}  # reuses the weights this one writes


def test_every_guide_example_has_a_spec():
    assert set(KERAS_PARAMS) == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_validates_and_counts_like_keras(name):
    model = specc.load(SPECS / f"{name}.yaml")
    assert model.count_params() == KERAS_PARAMS[name]
    table = model.summary()
    assert f"Total params: {KERAS_PARAMS[name]:,}" in table
    assert model.graph.count_params(trainable=False) == KERAS_NON_TRAINABLE.get(name, 0)


def test_summary_shows_every_node_of_a_shared_layer():
    table = specc.load(SPECS / "shared_lstm.yaml").summary()
    assert re.search(r"encoded_a \(shared_lstm: LSTM\) node 0\s+\(None, 64\)\s+82,176\s+tweet_a", table)
    assert re.search(r"encoded_b \(shared_lstm: LSTM\) node 1\s+\(None, 64\)\s+shared\s+tweet_b", table)


def test_layer_nodes_like_the_guide():
    conv_layer = specc.load(SPECS / "layer_nodes.yaml").get_layer("conv")
    assert conv_layer.get_input_shape_at(0) == (32, 32, 3)
    assert conv_layer.get_input_shape_at(1) == (64, 64, 3)
    assert conv_layer.get_output_shape_at(1) == (64, 64, 16)
    with pytest.raises(AttributeError, match=r"node 0: \(None, 32, 32, 3\), node 1: \(None, 64, 64, 3\)"):
        _ = conv_layer.input_shape


def shrunk_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    for path in SPECS.glob("*.yaml"):
        text = path.read_text()
        for old, new in SMALLER.get(path.stem, []):
            text = text.replace(old, new)
        (folder / path.name).write_text(text)
    return folder


@pytest.mark.parametrize("name", [n for n in ALL if n != "digits"])
def test_trains_a_step_and_predicts(name, tmp_path, monkeypatch):
    folder = shrunk_copy(tmp_path)
    monkeypatch.chdir(folder)
    for spec_name in [TRAINED_FIRST.get(name), name]:
        if spec_name is None:
            continue
        model = specc.load(folder / f"{spec_name}.yaml")
        batch = model.spec.fit.batch_size
        train = model.spec.data.train
        arrays = synthesize(model.graph, model.losses(), batch, seed=1, input_names=train.inputs,
                            target_names=train.targets)
        data_path = folder / train.path
        data_path.parent.mkdir(exist_ok=True)
        np.savez(data_path, **arrays)
        before = model.get_weights()
        history = model.fit(epochs=1)
        assert np.isfinite(history[0]["loss"])
        after = model.get_weights()
        assert any(not np.array_equal(before[k], after[k]) for k in before)
        model.save_weights(tmp_path / "runs" / spec_name / "weights.npz")
    predictions = model.predict(model.read_data(data_path, with_targets=False))
    assert set(predictions) == set(model.graph.outputs)
    for out, array in predictions.items():
        assert array.shape == (batch, *model.graph.shapes[out])


def test_the_readme_shows_shipped_specs_as_they_are():
    """The README's spec examples are the files in specs/ (comments aside), so they validate and train."""
    import yaml
    readme = (SPECS.parent / "README.md").read_text()
    shown = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(specc: 1\b.*?)```", readme, re.S)]
    assert len(shown) >= 2
    shipped = {spec["name"]: spec for spec in (yaml.safe_load(p.read_text()) for p in SPECS.glob("*.yaml"))}
    for spec in shown:
        assert spec == shipped[spec["name"]]
