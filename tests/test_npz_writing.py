"""Writing .npz files in chunks: archives as np.savez writes them, atomic; `specc synth` and `specc predict` in
bounded memory."""
from __future__ import annotations

import os
import signal
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import specc
from specc.io.weights import save_arrays, write_members
from specc.synth import synthesize, synthetic_members
from specc.train.loop import predict, write_predictions
from support import DIGITS, ROOT, digits, run

HEADLINE = ROOT / "specs" / "headline.yaml"  # two inputs (ids and numbers), two outputs
DENSE = ROOT / "specs" / "dense.yaml"        # one-hot targets
TINY = """\
specc: 1
inputs:
  x: {shape: [4]}
layers:
  y: {type: Dense, units: 16, inputs: x}
outputs: [y]
compile: {loss: mse}
"""

ARRAYS = {
    "weights": np.arange(60, dtype=np.float32).reshape(10, 2, 3) / 7,
    "ids": np.arange(-5, 12, dtype=np.int64),
    "flags": np.array([[True, False], [False, False], [True, True]]),
    "big_endian": np.linspace(0, 1, 9).astype(">f8"),
    "no_rows": np.zeros((0, 4), np.float32),
    "a/name with/slashes": np.arange(5, dtype=np.uint8),
    "state": np.array('{"epoch": 3}'),  # 0-d text, as checkpoints keep their state
}


def chunked(array: np.ndarray, rows: int):
    return [array[i:i + rows] for i in range(0, len(array), rows)] if array.ndim else [array]


def members_of(path: Path) -> dict[str, tuple]:
    """Every member's zip entry (all but its time) and bytes."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: (info.compress_type, info.file_size, info.extra, info.flag_bits, info.external_attr,
                                info.create_version, info.extract_version, archive.read(info))
                for info in archive.infolist()}


def leftovers(folder: Path, *expected: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in expected)


# -- write_members ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [1, 3, 100])
def test_write_members_writes_what_np_savez_writes(tmp_path, rows):
    write_members(tmp_path / "ours.npz", [(name, a.shape, a.dtype, chunked(a, rows)) for name, a in ARRAYS.items()])
    np.savez(tmp_path / "numpy.npz", **ARRAYS)
    assert members_of(tmp_path / "ours.npz") == members_of(tmp_path / "numpy.npz")
    with np.load(tmp_path / "ours.npz", allow_pickle=False) as loaded:
        assert loaded.files == list(ARRAYS)
        for name, array in ARRAYS.items():
            assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
            assert np.array_equal(loaded[name], array)


def test_save_arrays_is_np_savez(tmp_path):
    save_arrays(tmp_path / "ours.npz", ARRAYS)
    np.savez(tmp_path / "numpy.npz", **ARRAYS)
    assert members_of(tmp_path / "ours.npz") == members_of(tmp_path / "numpy.npz")


def test_chunks_are_cast_and_written_in_c_order(tmp_path):
    fortran = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    write_members(tmp_path / "a.npz", [("x", (4, 3), np.float32, [fortran[:1], fortran[1:]]),
                                       ("file", (2,), np.int32, [np.array([1.0, 2.0])])])
    with zipfile.ZipFile(tmp_path / "a.npz") as archive, archive.open("x.npy") as member:
        assert "'fortran_order': False" in member.read(128).decode("latin1")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as loaded:
        assert loaded["x"].dtype == np.float32 and np.array_equal(loaded["x"], fortran)
        assert loaded["file"].dtype == np.int32 and list(loaded["file"]) == [1, 2]


@pytest.mark.parametrize("chunks, message", [
    ([np.zeros((2, 3)), np.zeros((2, 4))], r"array 'x' of shape \(4, 3\) got a chunk of shape \(2, 4\)"),
    ([np.zeros(3)], r"array 'x' of shape \(4, 3\) got a chunk of shape \(3,\)"),
    ([np.zeros((3, 3)), np.zeros((2, 3))], r"array 'x' of shape \(4, 3\) got more than 4 rows"),
    ([np.zeros((3, 3))], r"array 'x' of shape \(4, 3\) got 3 rows"),
    ([], r"array 'x' of shape \(4, 3\) got 0 rows"),
])
def test_chunks_that_do_not_fit_are_refused(tmp_path, chunks, message):
    with pytest.raises(ValueError, match=message):
        write_members(tmp_path / "a.npz", [("ok", (1,), np.int64, [np.ones(1)]), ("x", (4, 3), np.float64, chunks)])
    assert leftovers(tmp_path) == []


def test_objects_are_never_written(tmp_path):
    with pytest.raises(ValueError, match="array 'x' has dtype object"):
        write_members(tmp_path / "a.npz", [("x", (1,), object, [np.array([{}], dtype=object)])])


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, old=np.arange(3))
    before = path.read_bytes()

    def chunks():
        yield np.zeros((2, 3), np.float32)
        raise RuntimeError("the source broke")
    with pytest.raises(RuntimeError, match="the source broke"):
        write_members(path, [("x", (4, 3), np.float32, chunks())])
    assert path.read_bytes() == before
    assert leftovers(tmp_path, "a.npz") == []


# -- synth ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [HEADLINE, DENSE, DIGITS])
def test_synthetic_values_do_not_depend_on_the_chunks(spec):
    model = specc.load(spec)
    whole = synthesize(model.graph, model.losses(), 300, seed=5)
    for chunk_bytes in (1, 1000, 1 << 26):
        members = synthetic_members(model.graph, model.losses(), 300, seed=5, chunk_bytes=chunk_bytes)
        for name, shape, dtype, chunks in members:
            chunks = list(chunks)
            assert len(chunks) == {1: 300, 1 << 26: 1}.get(chunk_bytes, len(chunks))
            array = np.concatenate(chunks)
            assert array.shape == shape and array.dtype == dtype
            assert np.array_equal(array, whole[name]), (name, chunk_bytes)
    assert list(whole) == [*model.graph.inputs, *model.graph.outputs]
    other = synthesize(model.graph, model.losses(), 300, seed=6)
    assert all(not np.array_equal(whole[name], other[name]) for name in whole)


def test_synthetic_arrays_are_what_the_losses_take():
    model = specc.load(HEADLINE)
    arrays = synthesize(model.graph, model.losses(), 500, seed=1)
    ids = arrays["main_input"]
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 10000 and len(np.unique(ids)) > 1000
    assert arrays["aux_input"].dtype == np.float32 and abs(arrays["aux_input"].std() - 1) < 0.1
    assert set(np.unique(arrays["main_output"])) == {0.0, 1.0}
    model = specc.load(DENSE)
    one_hot = synthesize(model.graph, model.losses(), 500, seed=1)[model.graph.outputs[0]]
    assert one_hot.dtype == np.float32 and np.array_equal(one_hot.sum(axis=1), np.ones(500))
    assert len(np.unique(one_hot.argmax(axis=1))) == one_hot.shape[1]


def test_specc_synth_writes_data_that_trains(tmp_path):
    data = tmp_path / "data.npz"
    result = run("synth", DIGITS, "-o", data, "--rows", 200, "--seed", 4)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"Wrote {data}: images (200, 8, 8) float32, labels (200,) int64\n"
    model = specc.load(DIGITS)
    expected = synthesize(model.graph, model.losses(), 200, seed=4, input_names={"images": "images"},
                          target_names={"digit": "labels"})
    with np.load(data, allow_pickle=False) as loaded:
        assert loaded.files == ["images", "labels"]
        assert all(np.array_equal(loaded[name], expected[name]) for name in expected)
    spec = digits(tmp_path, fit="{epochs: 2, batch_size: 32, shuffle: true}",
                  **{"path: data/digits.npz": f"path: {data}"})
    result = run("train", spec, "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "weights.npz").exists()


# -- predict ----------------------------------------------------------------------------------------------------

class RowSource:
    """Rows as the model reads them: len, shape, dtype and slices, nothing more; reading from row `broken_at`
    on calls `broken`."""

    def __init__(self, array: np.ndarray, broken_at: int | None = None, broken=None):
        self.array, self.broken_at, self.broken = array, broken_at, broken
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index: slice) -> np.ndarray:
        assert isinstance(index, slice)
        if self.broken_at is not None and index.start >= self.broken_at:
            self.broken()
        return self.array[index].copy()


def disk_went_away():
    raise OSError("the disk went away")


@pytest.fixture(scope="module")
def headline():
    model = specc.load(HEADLINE)
    arrays = synthesize(model.graph, model.losses(), 45, seed=2)
    return model, {name: arrays[name] for name in model.graph.inputs}


def test_streamed_predictions_are_model_predict(headline, tmp_path):
    model, inputs = headline
    shapes = write_predictions(model.graph, model.params, {k: RowSource(v) for k, v in inputs.items()}, 8,
                               tmp_path / "out" / "p.npz")
    assert shapes == {"main_output": (45, 1), "aux_output": (45, 1)}
    expected = model.predict(inputs, batch_size=8)
    with np.load(tmp_path / "out" / "p.npz", allow_pickle=False) as loaded:
        assert loaded.files == ["main_output", "aux_output"]
        for name, values in expected.items():
            assert loaded[name].dtype == np.float32 and np.array_equal(loaded[name], values)
    assert leftovers(tmp_path / "out", "p.npz") == []


def test_specc_predict_streams_what_model_predict_returns(headline, tmp_path):
    model, _ = headline
    model.save_weights(tmp_path / "w.npz")
    assert run("synth", HEADLINE, "-o", tmp_path / "d.npz", "--rows", 30).returncode == 0
    result = run("predict", HEADLINE, "--weights", tmp_path / "w.npz", "--data", tmp_path / "d.npz",
                 "-o", tmp_path / "p.npz", "--batch-size", 7)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"Wrote {tmp_path / 'p.npz'}: main_output (30, 1), aux_output (30, 1)\n"
    expected = model.predict(model.read_data(tmp_path / "d.npz", with_targets=False), batch_size=7)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as loaded:
        assert {name: loaded[name].tolist() for name in loaded.files} == \
            {name: values.tolist() for name, values in expected.items()}
    assert leftovers(tmp_path, "w.npz", "d.npz", "p.npz") == []


def test_a_failed_prediction_leaves_the_old_file_and_no_spools(headline, tmp_path):
    model, inputs = headline
    path = tmp_path / "p.npz"
    path.write_bytes(b"the old predictions")
    broken = {k: RowSource(v, 16, disk_went_away) for k, v in inputs.items()}
    with pytest.raises(OSError, match="the disk went away"):
        write_predictions(model.graph, model.params, broken, 8, path)
    assert path.read_bytes() == b"the old predictions"
    assert leftovers(tmp_path, "p.npz") == []


def test_sigterm_while_predicting_leaves_no_spools(headline, tmp_path):
    model, inputs = headline
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def terminate():
        # unhandled, SIGTERM would end the tests themselves
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "SIGTERM is not handled while predicting"
        os.kill(os.getpid(), signal.SIGTERM)
    terminated = {k: RowSource(v, 16, terminate) for k, v in inputs.items()}
    with pytest.raises(SystemExit) as stopped:
        write_predictions(model.graph, model.params, terminated, 8, tmp_path / "p.npz")
    assert stopped.value.code == 128 + signal.SIGTERM
    assert leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_predicting_does_not_hold_every_prediction(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    model = specc.load(tmp_path / "tiny.yaml")
    rows = 300_000
    inputs = {"x": np.random.default_rng(0).standard_normal((rows, 4), dtype=np.float32)}
    output_bytes = rows * 16 * 4
    model.predict({"x": inputs["x"][:10]})  # kernels compiled before measuring

    def peak(work) -> int:
        tracemalloc.start()
        try:
            work()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    held = peak(lambda: predict(model.graph, model.params, inputs, 4096))
    streamed = peak(lambda: write_predictions(model.graph, model.params, inputs, 4096, tmp_path / "p.npz"))
    assert held >= output_bytes  # the measure sees the arrays predictions are kept in
    assert streamed < output_bytes / 8, (streamed, output_bytes)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as loaded:
        assert np.array_equal(loaded["y"], model.predict(inputs, batch_size=4096)["y"])

