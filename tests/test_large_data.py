"""Datasets bigger than memory: memory-mapped files and shards train to the same weights, bit for bit, as data
read whole; what is wrong with a shard names the shard; value checks are remembered per file; the thread that
prepares batches ahead never outlives training."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import specc
import specc.io.batches as batches_module
import specc.io.data as data_module
import specc.io.values as values_module
import specc.kernels.data as kernels
from specc.io.rows import Rows
from specc.train.callbacks import Callback
from support import DIGITS, run

DIGITS_ARRAYS = dict(np.load(Path(DIGITS).parent / "data" / "digits.npz"))
IMAGES, LABELS = DIGITS_ARRAYS["images"], DIGITS_ARRAYS["labels"]
FIT = "fit: {epochs: 30, batch_size: 32, shuffle: true}"


def spec_reading(tmp_path: Path, path: str, fit: str = "fit: {epochs: 2, batch_size: 64, shuffle: true}",
                 extra: str = "") -> Path:
    """The digits spec in tmp_path reading `path` (a file, a list or a glob) under tmp_path/data."""
    text = DIGITS.read_text().replace("path: data/digits.npz", f"path: {path}").replace(FIT, fit)
    text = text.replace("targets: {digit: labels}", "targets: {digit: labels}" + extra)
    spec = tmp_path / "digits.yaml"
    spec.write_text(text)
    (tmp_path / "data").mkdir(exist_ok=True)
    return spec


def shards(tmp_path: Path, counts=(600, 600, 597), save=np.savez, **arrays):
    """The digits split into files data/part-0.npz, part-1.npz... of `counts` rows."""
    arrays = arrays or {"images": IMAGES, "labels": LABELS}
    start = 0
    for i, count in enumerate(counts):
        save(tmp_path / "data" / f"part-{i}.npz", **{k: v[start:start + count] for k, v in arrays.items()})
        start += count


def trained(spec: Path) -> tuple[dict, list]:
    model = specc.load(spec)
    history = model.fit()
    return model.params.as_dict(), history


@pytest.fixture
def mapped(monkeypatch):
    """Every dataset memory-mapped and its batches prepared ahead by a thread, however small."""
    monkeypatch.setattr(data_module, "MAPPED_BYTES", 0)
    monkeypatch.setattr(batches_module, "AHEAD_BELOW_RESIDENT", 2.0)


def assert_same_training(a: tuple[dict, list], b: tuple[dict, list]):
    (weights_a, history_a), (weights_b, history_b) = a, b
    assert history_a == history_b
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert np.array_equal(weights_a[name], weights_b[name]), name


# -- the same weights, however the data is read ---------------------------------------------------------------

def test_mapped_shards_and_compressed_data_train_as_data_in_memory(tmp_path, monkeypatch):
    in_memory = tmp_path / "memory"
    in_memory.mkdir()
    spec = spec_reading(in_memory, "data/digits.npz", extra="\n    sample_weight: w")
    weights = np.linspace(0.5, 2.0, len(LABELS))
    np.savez(in_memory / "data" / "digits.npz", images=IMAGES, labels=LABELS, w=weights)
    data = specc.load(spec).spec_data()[0]
    assert not data.mapped and isinstance(data.inputs["images"], np.ndarray)
    expected = trained(spec)

    monkeypatch.setattr(data_module, "MAPPED_BYTES", 0)
    one_file = tmp_path / "one"
    one_file.mkdir()
    spec = spec_reading(one_file, "data/digits.npz", extra="\n    sample_weight: w")
    np.savez(one_file / "data" / "digits.npz", images=IMAGES, labels=LABELS, w=weights)
    assert specc.load(spec).spec_data()[0].mapped
    assert_same_training(trained(spec), expected)

    # batches prepared by the thread from here on, each asking the disk for the rows of the batches after it
    monkeypatch.setattr(batches_module, "AHEAD_BELOW_RESIDENT", 2.0)
    monkeypatch.setattr(batches_module, "FROM_DISK_SECONDS", 0.0)
    for name, save in (("shards", np.savez), ("compressed", np.savez_compressed)):
        folder = tmp_path / name
        folder.mkdir()
        spec = spec_reading(folder, "data/part-*.npz", extra="\n    sample_weight: w")
        shards(folder, save=save, images=IMAGES, labels=LABELS, w=weights)
        assert specc.load(spec).spec_data()[0].mapped == (save is np.savez)
        assert_same_training(trained(spec), expected)


def test_shards_as_a_list_keep_its_order(tmp_path, mapped):
    spec = spec_reading(tmp_path, "[data/part-2.npz, data/part-0.npz, data/part-1.npz]")
    shards(tmp_path)
    train, validation = specc.load(spec).spec_data()
    order = np.concatenate([np.arange(1200, 1797), np.arange(0, 1200)])
    together = np.concatenate([train.take(slice(0, train.rows)).inputs["images"],
                               validation.take(slice(0, validation.rows)).inputs["images"]])
    assert np.array_equal(together, IMAGES[order].astype(np.float32))


def test_mapped_data_evaluates_and_predicts_as_data_in_memory(tmp_path, monkeypatch):
    spec = spec_reading(tmp_path, "data/digits.npz")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    model = specc.load(spec)
    in_memory = model.spec_data()
    monkeypatch.setattr(data_module, "MAPPED_BYTES", 0)
    mapped = model.spec_data()
    assert mapped[1].mapped and not in_memory[1].mapped
    assert model.evaluate(mapped[1]) == model.evaluate(in_memory[1])
    assert np.array_equal(model.predict(mapped[1])["digit"], model.predict(in_memory[1])["digit"])


# -- rows read on demand ------------------------------------------------------------------------------------

def test_rows_across_parts_equal_the_whole_array_cast():
    rng = np.random.default_rng(0)
    whole = rng.integers(0, 255, size=(50, 3, 2)).astype(np.uint8)
    rows = Rows([whole[:7], whole[7:7], whole[7:31], whole[31:]], np.float32, (6,))
    expected = whole.reshape(50, 6).astype(np.float32)
    assert rows.shape == (50, 6) and len(rows) == 50
    for index in (slice(0, 50), slice(5, 40), slice(45, 99), np.array([0, 6, 7, 30, 31, 49]),
                  np.array([49, 3, 31, 7, 3]), np.array([], dtype=np.int64)):
        got = rows[index]
        assert got.dtype == np.float32 and np.array_equal(got, expected[index])
    assert np.array_equal(rows.between(5, 33)[:], expected[5:33])
    fortran = Rows([np.asfortranarray(whole[:20].reshape(20, 6)), whole[20:]], np.float32, (6,))
    assert np.array_equal(fortran[np.array([1, 19, 20, 33])], expected[[1, 19, 20, 33]])
    values = np.array([[1e-300, -2.5e-40, 1.0000001], [np.pi, -0.0, 3e38]])
    assert np.array_equal(Rows([values], np.float32, (3,))[np.array([0, 1])], values.astype(np.float32))
    assert np.array_equal(np.asarray(rows), expected)
    with pytest.raises(IndexError):
        rows[np.array([50])]


# -- what is wrong with a shard names it ----------------------------------------------------------------------

def problems_of(spec: Path) -> list[str]:
    result = run("validate", spec, "--check-data")
    checked = [line for line in result.stderr.splitlines() if "data/" in line]
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec).spec_data()
    return checked + [str(p) for p in caught.value.problems]


def test_a_shard_with_other_dtype_or_shape_is_named(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/part-*.npz")
    shards(tmp_path)
    np.savez(tmp_path / "data" / "part-1.npz", images=IMAGES[:600].astype(np.float64), labels=LABELS[:600])
    (checked, loaded) = problems_of(spec)
    for said in (checked, loaded):
        assert "data/part-1.npz: array 'images' has dtype float64, uint8 in the first file, data/part-0.npz" in said, \
            said
    np.savez(tmp_path / "data" / "part-1.npz", images=IMAGES[:600].reshape(600, 64), labels=LABELS[:600])
    assert any("data/part-1.npz: array 'images' has rows of shape (64,), (8, 8) in the first file" in p
               for p in problems_of(spec))


def test_a_truncated_or_incomplete_shard_is_named(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/part-*.npz")
    shards(tmp_path)
    part = tmp_path / "data" / "part-2.npz"
    part.write_bytes(part.read_bytes()[:-100])
    problems = problems_of(spec)
    assert all("data/part-2.npz: is truncated or damaged" in p for p in problems), problems
    np.savez(part, images=IMAGES[:5])
    assert any("data/part-2.npz: no array 'labels', which the first file, data/part-0.npz, has" in p
               for p in problems_of(spec))


def test_a_glob_matching_nothing_is_located(tmp_path):
    spec = spec_reading(tmp_path, "data/train-*.npz")
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec).spec_data()
    (problem,) = caught.value.problems
    assert "no file matches 'data/train-*.npz'" in problem.message
    assert problem.line == spec.read_text().splitlines().index("    path: data/train-*.npz") + 1


def test_bad_values_are_found_in_their_shard_at_its_row(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/part-*.npz")
    labels = LABELS.copy()
    labels[600 + 17] = 10
    shards(tmp_path, images=IMAGES, labels=labels)
    (problem,) = problems_of(spec)
    assert "data/part-1.npz: array 'labels' has label 10 at row 17, outside [0, 10)" in problem


def test_a_shard_changed_between_runs_is_named_on_resume(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/part-*.npz", fit="fit: {epochs: 2, batch_size: 64, shuffle: true}")
    shards(tmp_path)
    out = tmp_path / "run"
    assert run("train", spec, "--out", out, "--epochs", "1").returncode == 0
    images = IMAGES[600:1200].copy()
    images[3, 0, 0] += 1
    np.savez(tmp_path / "data" / "part-1.npz", images=images, labels=LABELS[600:1200])
    result = run("train", "--resume", out, "--epochs", "2")
    assert result.returncode != 0
    assert "data/part-1.npz holds other values" in result.stderr, result.stderr


def test_a_file_rewritten_during_training_stops_the_run(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/digits.npz", fit="fit: {epochs: 3, batch_size: 64, shuffle: true}")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    model = specc.load(spec)
    data = model.spec_data()

    class Rewrite(Callback):
        def on_epoch_end(self, epoch, logs):
            np.savez(tmp_path / "data" / "digits.npz", images=IMAGES + 0, labels=LABELS, more=LABELS)

    with pytest.raises(data_module.DataChanged) as caught:
        model.fit(data=data, callbacks=[Rewrite()], out=tmp_path / "run")
    assert "data/digits.npz: changed while training read it" in str(caught.value)
    assert (tmp_path / "run" / "checkpoint.npz").is_file()


# -- value checks, remembered ---------------------------------------------------------------------------------

def test_value_checks_are_remembered_until_the_file_changes(tmp_path, monkeypatch, mapped):
    monkeypatch.setattr(values_module, "REMEMBERED_BYTES", 0)
    monkeypatch.setenv("SPECC_CACHE", str(tmp_path / "cache"))
    spec = spec_reading(tmp_path, "data/digits.npz")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    calls = []
    summary = kernels.value_summary
    monkeypatch.setattr(kernels, "value_summary", lambda values: calls.append(1) or summary(values))
    specc.load(spec).spec_data()
    assert len(calls) == 2 and (tmp_path / "cache" / "summaries.json").is_file()
    specc.load(spec).spec_data()
    assert len(calls) == 2  # remembered
    labels = LABELS.copy()
    labels[5] = 11
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=labels)
    with pytest.raises(specc.SpecError, match="has label 11 at row 5"):
        specc.load(spec).spec_data()
    assert len(calls) == 4


# -- the thread that prepares batches -------------------------------------------------------------------------

def batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "specc-batches"]


def test_no_thread_outlives_training_or_an_error_in_a_batch(tmp_path, monkeypatch, mapped):
    spec = spec_reading(tmp_path, "data/digits.npz")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    model = specc.load(spec)
    data = model.spec_data()
    started = []
    real_take = data_module.Dataset.take

    def take(self, index):
        started.append(threading.current_thread().name)
        return real_take(self, index)
    monkeypatch.setattr(data_module.Dataset, "take", take)
    model.fit(data=data, epochs=1)
    assert "specc-batches" in started and not batch_threads()

    def failing(self, index):
        if len(started) > 5:
            raise OSError("the disk went away")
        started.append(1)
        return real_take(self, index)
    started.clear()
    monkeypatch.setattr(data_module.Dataset, "take", failing)
    with pytest.raises(OSError, match="the disk went away"):
        model.fit(data=data, epochs=1)
    assert not batch_threads()


def test_stopping_mid_epoch_stops_the_thread_and_keeps_the_checkpoint(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/digits.npz", fit="fit: {epochs: 2, batch_size: 16, shuffle: true}")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    model = specc.load(spec)
    asked = []
    model.fit(out=tmp_path / "run", stop=lambda: asked.append(1) or len(asked) >= 7)
    assert model.stopped["reason"] == "interrupted" and model.train_state.step == 7
    assert (tmp_path / "run" / "checkpoint.npz").is_file() and not batch_threads()
    resumed = specc.load(spec)
    resumed.fit(resume=tmp_path / "run")
    fresh = specc.load(spec)
    fresh.fit()
    for name, value in fresh.params.as_dict().items():
        assert np.array_equal(value, resumed.params.as_dict()[name]), name


# -- a folder of .npy files -----------------------------------------------------------------------------------

def test_a_folder_of_npy_files_trains_as_its_npz(tmp_path, monkeypatch):
    spec = spec_reading(tmp_path, "data/digits.npz")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    expected = trained(spec)
    folder = tmp_path / "data" / "digits"
    folder.mkdir()
    np.save(folder / "images.npy", IMAGES)
    np.save(folder / "labels.npy", np.asfortranarray(LABELS))
    spec = spec_reading(tmp_path, "data/digits")
    assert_same_training(trained(spec), expected)
    monkeypatch.setattr(data_module, "MAPPED_BYTES", 0)
    assert specc.load(spec).spec_data()[0].mapped
    assert_same_training(trained(spec), expected)


def test_what_is_wrong_in_a_folder_names_the_file(tmp_path):
    spec = spec_reading(tmp_path, "data/digits")
    folder = tmp_path / "data" / "digits"
    folder.mkdir()
    problems = problems_of(spec)
    assert any("is a folder without .npy files" in p for p in problems), problems
    np.save(folder / "images.npy", IMAGES)
    np.save(folder / "labels.npy", np.array([object()] * len(LABELS)), allow_pickle=True)
    assert any("array 'labels' holds Python objects, which are never loaded" in p for p in problems_of(spec))
    np.save(folder / "labels.npy", LABELS)
    (folder / "images.npy").write_bytes((folder / "images.npy").read_bytes()[:-10])
    assert any("array 'images' is damaged: its header declares shape (1797, 8, 8)" in p for p in problems_of(spec))


def test_a_second_ctrl_c_mid_epoch_leaves_no_thread(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/digits.npz")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    model = specc.load(spec)
    asked = []

    def second_ctrl_c():
        asked.append(1)
        if len(asked) == 5:  # what StopOnSignal does on a second signal
            raise KeyboardInterrupt
        return False
    with pytest.raises(KeyboardInterrupt):
        model.fit(stop=second_ctrl_c)
    assert not batch_threads()


@pytest.mark.parametrize("rows", [1, 2, 7, 1000, 123457])
def test_the_shuffled_order_is_numpys_permutation(rows):
    from specc.train.loop import shuffled_rows
    for seed in (0, 1, 2 ** 40):
        ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        assert np.array_equal(shuffled_rows(ours, rows), theirs.permutation(rows))
        assert ours.bit_generator.state == theirs.bit_generator.state  # the next epoch's draw is the same too


def test_residency_is_read_from_the_system(tmp_path, mapped):
    spec = spec_reading(tmp_path, "data/digits.npz")
    np.savez(tmp_path / "data" / "digits.npz", images=IMAGES, labels=LABELS)
    train, _ = specc.load(spec).spec_data()
    np.asarray(train.inputs["images"]).sum()  # every page read: in the page cache now
    assert train.resident() == 1.0
    in_memory = train.take(slice(0, 10))
    assert in_memory.resident() == 1.0
