"""Bad data files: each problem names the data file and, when the spec named it, the spec line that did."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import specc
from specc.errors import dotted

SPECS = Path(__file__).parents[1] / "specs"
DIGITS = np.load(SPECS / "data" / "digits.npz")
IMAGES, LABELS = DIGITS["images"], DIGITS["labels"]


@pytest.fixture
def spec(tmp_path) -> Path:
    """The digits spec in tmp_path, with an empty data/ folder beside it."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "digits.yaml"
    shutil.copy(SPECS / "digits.yaml", path)
    return path


def position(text: str, at: str, offset: int = 0) -> tuple[int, int]:
    """1-based line and column of the first character of `at` (which occurs once) plus `offset`."""
    assert text.count(at) == 1, at
    index = text.index(at) + offset
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def data_problems(spec: Path):
    model = specc.load(spec)  # the spec itself is fine; only its data is not
    with pytest.raises(specc.SpecError) as caught:
        model.spec_data()
    problems = caught.value.problems
    for p in problems:
        assert p.file == str(spec), str(p)
        assert "data/" in p.message, str(p)
    return problems


IMAGES_VALUE = ("inputs: {images: images}", 17)   # where the spec maps input 'images' to its array
LABELS_VALUE = ("targets: {digit: labels}", 17)


def one_problem(spec: Path, path: str, at, *parts: str):
    """The single problem, at key `path`, on the line and column of `at` in the spec, saying every part."""
    (problem,) = data_problems(spec)
    assert dotted(problem.path) == path, str(problem)
    assert (problem.line, problem.column) == position(spec.read_text(), *((at,) if isinstance(at, str) else at)), \
        str(problem)
    for part in parts:
        assert part in problem.message, str(problem)
    return problem


def save(spec: Path, **arrays):
    np.savez(spec.parent / "data" / "digits.npz", **arrays)


def test_missing_data_file(spec):
    one_problem(spec, "data.train", "path: data/digits.npz", "data/digits.npz: no such file")


def test_data_path_is_a_folder(spec):
    (spec.parent / "data" / "digits.npz").mkdir()
    one_problem(spec, "data.train", "path: data/digits.npz", "data/digits.npz: is a directory")


def test_random_bytes_are_not_an_npz(spec):
    (spec.parent / "data" / "digits.npz").write_bytes(os.urandom(64) + b"garbage")
    problem = one_problem(spec, "data.train", "path: data/digits.npz", "data/digits.npz: is not an .npz file")
    assert "allow_pickle" not in problem.message  # never advise loading a file unsafely


def test_empty_file_is_not_an_npz(spec):
    (spec.parent / "data" / "digits.npz").write_bytes(b"")
    one_problem(spec, "data.train", "path: data/digits.npz", "is not an .npz file")


def test_npy_instead_of_npz(spec):
    with open(spec.parent / "data" / "digits.npz", "wb") as f:
        np.save(f, IMAGES)
    one_problem(spec, "data.train", "path: data/digits.npz", "is a single .npy array, not an .npz archive")


class _Bomb:
    """Unpickling this creates the file it names: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_object_array_is_refused_and_never_unpickled(spec):
    marker = spec.parent / "unpickled"
    objects = np.empty(len(LABELS), dtype=object)
    objects[:] = [_Bomb(marker)] * len(LABELS)
    save(spec, images=objects, labels=LABELS)
    one_problem(spec, "data.train", "path: data/digits.npz",
                "array 'images' holds Python objects, which are never loaded")
    assert not marker.exists()
    # the control: loading it unsafely would have run the code
    with np.load(spec.parent / "data" / "digits.npz", allow_pickle=True) as archive:
        archive["images"]
    assert marker.exists()


def test_missing_array_with_suggestion(spec):
    save(spec, imagez=IMAGES, labels=LABELS)
    one_problem(spec, "data.train.inputs.images", IMAGES_VALUE,
                "no array 'images' for input 'images' (did you mean 'imagez'?)", "(arrays: imagez, labels)")


def test_missing_target_array(spec):
    save(spec, images=IMAGES, label=LABELS)
    one_problem(spec, "data.train.targets.digit", LABELS_VALUE,
                "no array 'labels' for output 'digit' (did you mean 'label'?)")


def test_wrong_shape(spec):
    save(spec, images=IMAGES.reshape(len(IMAGES), 64), labels=LABELS)
    one_problem(spec, "data.train.inputs.images", IMAGES_VALUE,
                "array 'images' has shape (1797, 64); input 'images' needs (rows, 8, 8)")


def test_row_counts_differ(spec):
    save(spec, images=IMAGES, labels=LABELS[:-5])
    one_problem(spec, "data.train", "path: data/digits.npz",
                "arrays have different numbers of rows", "'images': 1797", "'labels': 1792")


def test_nan_in_inputs(spec):
    images = IMAGES.astype(np.float32)
    images[7, 3, 3] = np.nan
    save(spec, images=images, labels=LABELS)
    one_problem(spec, "data.train.inputs.images", IMAGES_VALUE, "array 'images' has NaN or infinite values",
                "row 7")


def test_labels_out_of_range(spec):
    labels = LABELS.copy()
    labels[11] = 10
    save(spec, images=IMAGES, labels=labels)
    one_problem(spec, "data.train.targets.digit", LABELS_VALUE,
                "array 'labels' has label 10 at row 11, outside [0, 10)", "target of output 'digit'")


def test_negative_label(spec):
    labels = LABELS.copy()
    labels[3] = -1
    save(spec, images=IMAGES, labels=labels)
    one_problem(spec, "data.train.targets.digit", LABELS_VALUE, "has label -1 at row 3")


def test_non_integer_labels(spec):
    save(spec, images=IMAGES, labels=LABELS + 0.5)
    one_problem(spec, "data.train.targets.digit", LABELS_VALUE, "non-integer values; class labels are integers")


def test_string_inputs(spec):
    save(spec, images=IMAGES.astype(str), labels=LABELS)
    one_problem(spec, "data.train.inputs.images", IMAGES_VALUE, "has dtype <U", "numbers are needed")


def test_huge_integers_into_float32_refused(spec):
    images = IMAGES.astype(np.int64)
    images[0, 0, 0] = 2 ** 40
    save(spec, images=images, labels=LABELS)
    one_problem(spec, "data.train.inputs.images", IMAGES_VALUE, "float32 cannot hold exactly")


def test_several_problems_in_one_file_all_reported(spec):
    labels = LABELS.copy()
    labels[0] = 12
    save(spec, images=IMAGES.reshape(-1, 64), labels=labels)
    problems = data_problems(spec)
    assert {dotted(p.path) for p in problems} == {"data.train.inputs.images", "data.train.targets.digit"}


def test_uint8_becomes_float32(spec):
    save(spec, images=IMAGES, labels=LABELS)
    assert IMAGES.dtype == np.uint8
    train, validation = specc.load(spec).spec_data()
    assert train.inputs["images"].dtype == np.float32
    assert (train.rows, validation.rows) == (1438, 359)  # validation_split 0.2: the last rows
    assert np.array_equal(train.inputs["images"], IMAGES[:1438].astype(np.float32))
    assert np.array_equal(validation.targets["digit"], LABELS[1438:])


def test_float64_becomes_float32(spec):
    save(spec, images=IMAGES.astype(np.float64) / 16, labels=LABELS)
    train, _ = specc.load(spec).spec_data()
    assert train.inputs["images"].dtype == np.float32
    assert np.allclose(train.inputs["images"], IMAGES[:1438] / 16)


def test_validation_file_problems_point_at_validation(spec):
    text = spec.read_text().replace(
        "validation_split: 0.2",
        "validation: {path: data/val.npz, inputs: {images: images}, targets: {digit: labels}}")
    spec.write_text(text)
    save(spec, images=IMAGES, labels=LABELS)
    np.savez(spec.parent / "data" / "val.npz", images=IMAGES[:10], labels=LABELS[:9])
    (problem,) = data_problems(spec)
    assert dotted(problem.path) == "data.validation"
    assert (problem.line, problem.column) == position(text, "{path: data/val.npz")
    assert "data/val.npz: arrays have different numbers of rows" in problem.message


def test_data_file_from_the_command_line_names_that_file(spec):
    save(spec, images=IMAGES, labels=LABELS)
    other = spec.parent / "other.npz"
    np.savez(other, pictures=IMAGES)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec).read_data(other, with_targets=False)
    (problem,) = caught.value.problems
    assert problem.file == str(other)
    assert problem.line is None  # no spec line named this file
    assert "no array 'images' for input 'images'" in problem.message and "(arrays: pictures)" in problem.message


# -- integer inputs -------------------------------------------------------------------------------------------

def test_float_data_into_int32_input_refused(tmp_path):
    from specc.graph import Graph
    from specc.io.data import load_dataset
    graph = Graph("ids", {"ids": (4,)}, {"ids": "int32"}, [], [], {}, {"ids": (4,)})
    path = tmp_path / "ids.npz"
    np.savez(path, ids=np.arange(8.0).reshape(2, 4))
    with pytest.raises(specc.SpecError) as caught:
        load_dataset(path, graph, {}, None, None, ("data", "train"), with_targets=False, shown_as="ids.npz")
    (problem,) = caught.value.problems
    assert dotted(problem.path) == "data.train"
    assert problem.message == "ids.npz: array 'ids' has dtype float64; the input is int32 (integer ids)"
    np.savez(path, ids=np.arange(8).reshape(2, 4).astype(np.int64))
    loaded = load_dataset(path, graph, {}, None, None, ("data", "train"), with_targets=False)
    assert loaded.inputs["ids"].dtype == np.int32


def test_float_data_into_int32_input_of_a_spec(tmp_path):
    from specc.layers import LAYERS
    if "Embedding" not in LAYERS:
        pytest.skip("Embedding is not registered yet")
    spec = tmp_path / "ids.yaml"
    spec.write_text("""\
specc: 1
inputs:
  ids: {shape: [4], dtype: int32}
layers:
  vectors: {type: Embedding, input_dim: 10, output_dim: 3, inputs: ids}
  flat: {type: Flatten, inputs: vectors}
  out: {type: Dense, units: 1, activation: sigmoid, inputs: flat}
outputs: [out]
compile: {loss: binary_crossentropy}
data:
  train: {path: ids.npz}
""")
    np.savez(tmp_path / "ids.npz", ids=np.zeros((6, 4)), out=np.zeros(6))
    (problem,) = data_problems_anywhere(spec)
    assert dotted(problem.path) == "data.train"
    assert problem.line == 11
    assert "array 'ids' has dtype float64; the input is int32" in problem.message
    np.savez(tmp_path / "ids.npz", ids=np.full((6, 4), 10), out=np.zeros(6))
    (problem,) = data_problems_anywhere(spec)
    assert "has id 10 at row 0, outside [0, 10) of the Embedding" in problem.message


def data_problems_anywhere(spec: Path):
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec).spec_data()
    return caught.value.problems


# -- damaged files, targets, sample weights -------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.5, 0.99], ids=["half", "all-but-the-end"])
def test_truncated_npz(spec, keep):
    save(spec, images=IMAGES, labels=LABELS)
    path = spec.parent / "data" / "digits.npz"
    whole = path.read_bytes()
    path.write_bytes(whole[:int(len(whole) * keep)])
    problem = one_problem(spec, "data.train", "path: data/digits.npz", "data/digits.npz: is truncated or damaged",
                          "written or copied only in part")
    assert "allow_pickle" not in problem.message


def test_damaged_array_in_npz(spec):
    save(spec, images=IMAGES, labels=LABELS)
    path = spec.parent / "data" / "digits.npz"
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 4] ^= 0xFF  # inside the first array's data: its checksum no longer matches
    path.write_bytes(bytes(damaged))
    one_problem(spec, "data.train", "path: data/digits.npz", "array 'images' is damaged", "CRC")


def regression(spec: Path) -> str:
    """The digits spec made a regression on one-hot targets (so targets are floats that can be NaN)."""
    text = spec.read_text().replace("loss: sparse_categorical_crossentropy", "loss: mse")
    spec.write_text(text)
    return text


def test_nan_in_float_targets(spec):
    regression(spec)
    onehot = np.eye(10, dtype=np.float32)[LABELS]
    onehot[5, 2] = np.inf
    save(spec, images=IMAGES, labels=onehot)
    one_problem(spec, "data.train.targets.digit", LABELS_VALUE,
                "array 'labels' has NaN or infinite values (first at row 5) (target of output 'digit')")


WEIGHTS_KEY = ("sample_weight: w", 15)  # where the spec names the weights array


def weighted(spec: Path) -> Path:
    text = spec.read_text().replace("targets: {digit: labels}", "targets: {digit: labels}\n    sample_weight: w")
    spec.write_text(text)
    return spec


@pytest.mark.parametrize("w, parts", [
    (None, ["no array 'w' for sample_weight", "(arrays: images, labels, ww)"]),
    (np.ones((len(LABELS), 2)), ["array 'w' has shape (1797, 2); sample weights are one number per row: (rows,)"]),
    (np.where(np.arange(len(LABELS)) == 9, -1.0, 1.0), ["array 'w' has a negative weight at row 9"]),
    (np.where(np.arange(len(LABELS)) == 4, np.nan, 1.0), ["array 'w' has a NaN or infinite weight at row 4"]),
    (np.array(["a"] * len(LABELS)), ["array 'w' has dtype <U1; sample weights are numbers"]),
], ids=["missing", "shape", "negative", "nan", "strings"])
def test_sample_weight_problems(spec, w, parts):
    weighted(spec)
    arrays = {"images": IMAGES, "labels": LABELS}
    arrays.update({"ww": np.ones(len(LABELS))} if w is None else {"w": w})
    save(spec, **arrays)
    one_problem(spec, "data.train.sample_weight", WEIGHTS_KEY, *parts)


def test_sample_weight_row_count(spec):
    weighted(spec)
    save(spec, images=IMAGES, labels=LABELS, w=np.ones(len(LABELS) - 1))
    one_problem(spec, "data.train", "path: data/digits.npz", "arrays have different numbers of rows",
                "'w': 1796")


def test_sample_weight_is_split_with_the_rows(spec):
    weighted(spec)
    w = np.arange(len(LABELS), dtype=np.float64)
    save(spec, images=IMAGES, labels=LABELS, w=w[:, None])  # a column of weights is fine too
    train, validation = specc.load(spec).spec_data()
    assert train.sample_weight.dtype == np.float32
    assert np.array_equal(train.sample_weight, w[:1438]) and np.array_equal(validation.sample_weight, w[1438:])
