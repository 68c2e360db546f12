"""specc's weights files load into the same model written with Keras, which then predicts what specc does,
computes the same loss and metrics, and takes the same training step.

Runs where Keras and one of its backends are installed (the optional `bench` extra); skipped elsewhere.
The Keras models are benchmarks/keras_reference.py's, one per spec, the same ones the benchmark times
specc against; they take their weights by name from specc's weights file ("<layer>/<weight>",
"<model>/<layer>/<weight>" inside a sub-model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import specc
from benchmarks.keras_reference import (
    MODELS,
    build,
    compile_like_spec,
    keras_inputs,
    keras_targets,
    load_specc_weights,
    specc_keyed_weights,
)
from specc.io.data import Dataset
from specc.synth import synthesize

SPECS = Path(__file__).parents[1] / "specs"
ROWS = 16
FEWER_ROWS = {"inception": 4, "residual": 4, "mini_xception": 4}  # large images: a few are enough, and quick


class Trained:
    """A spec's specc model after one short epoch (weights that are not the initial ones), its weights file
    before and after, and data to compare on."""

    def __init__(self, spec: str, folder: Path):
        self.spec = spec
        self.model = specc.load(SPECS / f"{spec}.yaml")
        rows = FEWER_ROWS.get(spec, ROWS)
        arrays = synthesize(self.model.graph, self.model.losses(), rows=rows, seed=1)
        self.data = Dataset({n: arrays[n] for n in self.model.graph.inputs},
                            {n: arrays[n] for n in self.model.graph.outputs})
        self.initial_weights, self.weights = folder / "initial.npz", folder / "weights.npz"
        self.model.save_weights(self.initial_weights)
        self.model.fit(epochs=1, batch_size=rows // 2, data=(self.data, None))  # two steps
        self.model.save_weights(self.weights)

    def keras_model(self, weights: Path):
        """The Keras reference model holding the weights of that file, compiled as the spec says."""
        net = build(self.spec)
        with np.load(weights, allow_pickle=False) as saved:
            untaken = load_specc_weights(net, dict(saved))
        assert not untaken, f"weights Keras did not take: {sorted(untaken)}"
        compile_like_spec(net, self.model)
        return net


@pytest.fixture(scope="module", params=sorted(MODELS))
def trained(request, keras, tmp_path_factory) -> Trained:
    """Asks for `keras` so that, without it, the tests skip before specc trains anything."""
    return Trained(request.param, tmp_path_factory.mktemp(request.param))


def test_keras_model_with_specc_weights_predicts_the_same(keras, trained):
    net = trained.keras_model(trained.weights)
    predicted = net.predict(keras_inputs(net, trained.data.inputs), verbose=0)
    predicted = predicted if isinstance(predicted, list) else [predicted]
    ours = trained.model.predict(trained.data.inputs)
    for name, values in zip(trained.model.graph.outputs, predicted):
        np.testing.assert_allclose(ours[name], keras.ops.convert_to_numpy(values), rtol=2e-4, atol=2e-5,
                                   err_msg=name)


def test_keras_model_with_specc_weights_has_the_same_loss_and_metrics(trained):
    net = trained.keras_model(trained.weights)
    theirs = net.evaluate(keras_inputs(net, trained.data.inputs), keras_targets(trained.model, trained.data.targets),
                          batch_size=trained.data.rows, verbose=0, return_dict=True)
    ours = trained.model.evaluate(trained.data, batch_size=trained.data.rows)
    assert set(ours) == set(theirs)  # the same names too: specc logs as Keras does
    for name, value in ours.items():
        assert value == pytest.approx(theirs[name], rel=1e-5, abs=1e-6), name


def test_one_training_step_moves_the_weights_as_keras_does(trained):
    """One step on one batch, with fresh optimizers as the spec's `compile` sets them, from the initial
    weights: after training, some rows' probabilities can be clipped (Keras clips them to [1e-7, 1 - 1e-7]
    in its crossentropies), where Keras' gradient is zero and specc's is not. A model that draws noise in
    training (Dropout) cannot take Keras' step: Keras draws other masks."""
    if any(getattr(layer.config, "rate", 0) for layer in trained.model.graph.all_layers()):
        pytest.skip("draws its own noise in training (Dropout); Keras draws other masks")
    net = trained.keras_model(trained.initial_weights)
    net.train_on_batch(keras_inputs(net, trained.data.inputs), keras_targets(trained.model, trained.data.targets))
    fresh = specc.load(SPECS / f"{trained.spec}.yaml")
    fresh.load_weights(trained.initial_weights)
    fresh.fit(epochs=1, batch_size=trained.data.rows, data=(trained.data, None))

    ours, theirs = fresh.get_weights(), specc_keyed_weights(net)
    assert set(ours) == set(theirs)
    # Adam's and RMSprop's first step moves each weight by about the learning rate, whatever its gradient's
    # size; a wrong gradient or setting is off by that much. A gradient near the optimizer's epsilon makes
    # the step sensitive to float32 rounding, hence a tenth of a step, not float32's tolerance.
    step = fresh.spec.compile.optimizer.learning_rate
    for key, value in ours.items():
        np.testing.assert_allclose(value, theirs[key], rtol=0, atol=step / 10, err_msg=key)
