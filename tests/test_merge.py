"""Merge layers beyond the layer cases: Dot's output shapes (Keras' batch_dot), what the element-wise merges
broadcast, and the errors a spec gets for shapes that do not fit."""
from __future__ import annotations

import numpy as np
import pytest

import specc
from specc.layers import LAYERS

SPEC = """\
specc: 1
name: merged
inputs:
  a: {{shape: {a}}}
  b: {{shape: {b}}}
layers:
  m: {entry}
outputs: [m]
compile: {{loss: mse}}
"""


def load(tmp_path, a, b, entry):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(a=list(a), b=list(b), entry=entry))
    return specc.load(path)


@pytest.mark.parametrize("a, b, axes, expected", [
    ((3, 4), (5, 4), 2, (3, 5)),
    ((4,), (4,), 1, (1,)),
    ((3, 4), (4, 2), [2, 1], (3, 2)),
    ((2, 3, 4), (3, 5), [2, 1], (2, 4, 5)),
    ((4,), (3, 4), -1, (3,)),
])
def test_dot_output_shapes_are_keras_batch_dot(tmp_path, a, b, axes, expected):
    model = load(tmp_path, a, b, f"{{type: Dot, axes: {axes}, inputs: [a, b]}}")
    assert model.graph.shapes["m"] == expected
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(2, *a)), rng.normal(size=(2, *b))
    y, _ = LAYERS["Dot"](type="Dot", axes=axes).forward({}, [xa, xb], False)
    ia, ib = (axes, axes) if isinstance(axes, int) else axes
    expected_values = np.stack([np.tensordot(xa[i], xb[i], axes=(ia % xa.ndim - 1, ib % xb.ndim - 1))
                                for i in range(2)]).reshape(2, *expected)
    np.testing.assert_allclose(y, expected_values, rtol=1e-12)


def test_dot_normalize_gives_cosine_similarity():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    y, _ = LAYERS["Dot"](type="Dot", axes=1, normalize=True).forward({}, [a, b], False)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(y[:, 0], cosine, rtol=1e-12)


@pytest.mark.parametrize("type_name, reference", [("Multiply", np.multiply), ("Maximum", np.maximum),
                                                  ("Minimum", np.minimum), ("Average", lambda a, b: (a + b) / 2)])
def test_element_wise_merges_broadcast_as_keras(tmp_path, type_name, reference):
    """A smaller rank gets axes of size 1 after the batch; axes of size 1 stretch."""
    model = load(tmp_path, (3, 4), (4,), f"{{type: {type_name}, inputs: [a, b]}}")
    assert model.graph.shapes["m"] == (3, 4)
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4))
    y, _ = LAYERS[type_name](type=type_name).forward({}, [a, b], False)
    np.testing.assert_allclose(y, reference(a, b[:, None, :]), rtol=1e-12)


@pytest.mark.parametrize("a, b, entry, message", [
    ((3, 4), (5, 3), "{type: Dot, axes: 2, inputs: [a, b]}",
     "cannot take the dot product of (None, 3, 4) and (None, 5, 3) along axes 2 and 2: their sizes 4 and 3 differ"),
    ((4,), (4,), "{type: Dot, axes: 0, inputs: [a, b]}", "axis 0 is the batch"),
    ((4,), (4,), "{type: Dot, axes: [1, 2, 1], inputs: [a, b]}", "must be one axis, or two"),
    ((3, 4), (2, 4), "{type: Multiply, inputs: [a, b]}",
     "cannot multiply tensors of shapes (None, 3, 4) and (None, 2, 4)"),
    ((4,), (5,), "{type: Maximum, inputs: [a, b]}", "cannot take the maximum of tensors of shapes"),
    ((4,), (5,), "{type: Average, inputs: [a, b]}", "each axis, counted from the last, must have one size or size 1"),
])
def test_shapes_that_do_not_fit_are_spec_errors(tmp_path, a, b, entry, message):
    with pytest.raises(specc.SpecError) as caught:
        load(tmp_path, a, b, entry)
    (problem,) = caught.value.problems
    assert message in problem.message, problem.message
