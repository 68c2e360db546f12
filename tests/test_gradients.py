"""Every layer's, activation's and loss's backward pass against finite differences (float64)."""
import numpy as np
import pytest
from gradcheck import check_layer_gradients, numeric_gradient

from specc.layers import Activation, Add, Concatenate, Dense, Flatten
from specc.train.losses import LOSSES, default_loss

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(5,), (2, 5)], ids=["2d", "3d"])
def test_dense(activation, shape):
    check_layer_gradients(Dense(type="Dense", units=4, activation=activation), [shape])


def test_dense_without_bias():
    layer = Dense(type="Dense", units=3, use_bias=False)
    assert set(layer.weight_shapes([(4,)])) == {"kernel"}
    check_layer_gradients(layer, [(4,)])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer(activation):
    check_layer_gradients(Activation(type="Activation", activation=activation), [(6,)])


@pytest.mark.parametrize("axis,shapes", [(-1, [(3,), (2,)]), (1, [(2, 3), (1, 3)]), (-1, [(2, 3), (2, 1), (2, 2)])])
def test_concatenate(axis, shapes):
    check_layer_gradients(Concatenate(type="Concatenate", axis=axis), shapes)


def test_add_three_inputs():
    check_layer_gradients(Add(type="Add"), [(3, 2)] * 3)


def test_flatten():
    check_layer_gradients(Flatten(type="Flatten"), [(3, 2, 2)])


def _targets(name, pred, rng):
    if name == "sparse_categorical_crossentropy":
        return rng.integers(0, pred.shape[-1], size=pred.shape[:-1])
    if name == "categorical_crossentropy":
        return np.eye(pred.shape[-1])[rng.integers(0, pred.shape[-1], size=pred.shape[:-1])]
    if name == "binary_crossentropy":
        return (rng.random(pred.shape) > 0.5).astype(float)
    return rng.normal(size=pred.shape)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("shape", [(4, 3), (4, 2, 3)], ids=["2d", "3d"])
def test_loss_gradient(name, shape):
    rng = np.random.default_rng(1)
    pred = rng.uniform(0.05, 0.95, size=shape)
    if "categorical" in name:
        pred /= pred.sum(-1, keepdims=True)
    true = _targets(name, pred, rng)
    _, grad = default_loss(name)(pred, true)
    picks, expected = numeric_gradient(lambda: default_loss(name)(pred, true)[0], pred)
    np.testing.assert_allclose(grad.reshape(-1)[picks], expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name,reference", [
    ("binary_crossentropy", lambda p, t: np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))),
    ("categorical_crossentropy", lambda p, t: np.mean(-(t * np.log(p)).sum(-1))),
    ("mse", lambda p, t: np.mean((p - t) ** 2)),
    ("mae", lambda p, t: np.mean(np.abs(p - t))),
])
def test_loss_value_is_keras_reduction(name, reference):
    """Mean over every non-batch position, then over the batch."""
    rng = np.random.default_rng(2)
    pred = rng.uniform(0.05, 0.95, size=(5, 3))
    pred /= pred.sum(-1, keepdims=True)
    true = _targets(name, pred, rng)
    assert default_loss(name)(pred, true)[0] == pytest.approx(reference(pred, true), rel=1e-12)


def reference_categorical(pred, true):
    """The plain numpy formula: renormalize, clip, -sum(t log p), mean over positions."""
    p = np.clip(pred / pred.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    return np.mean(-(true * np.log(p)).sum(-1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_crossentropy_kernel_against_numpy_reference(dtype):
    rng = np.random.default_rng(4)
    pred = rng.dirichlet(np.ones(5), size=(3, 4)).astype(dtype)
    pred[0, 0] = [1e-12, 1 - 4e-12, 1e-12, 1e-12, 1e-12]  # clipped on both sides
    true = np.eye(5)[rng.integers(0, 5, size=(3, 4))]
    loss, grad = default_loss("categorical_crossentropy")(pred, true)
    assert grad.dtype == dtype
    assert loss == pytest.approx(reference_categorical(pred.astype(float), true), rel=1e-5)


def test_sparse_equals_one_hot_categorical():
    rng = np.random.default_rng(3)
    pred = rng.dirichlet(np.ones(4), size=6)
    labels = rng.integers(0, 4, size=6)
    sparse = default_loss("sparse_categorical_crossentropy")(pred, labels)
    dense = default_loss("categorical_crossentropy")(pred, np.eye(4)[labels])
    assert sparse[0] == pytest.approx(dense[0])
    np.testing.assert_allclose(sparse[1], dense[1])
