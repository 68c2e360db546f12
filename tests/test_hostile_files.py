"""Hostile files: pipes, devices, folders and sockets in the place of specs, data, weights and checkpoints; zip
bombs; malformed arrays; hand-edited checkpoints; numbers that overflow. Each is refused at once with a message
naming the file (and the array, field or spec key), never an internal error, a traceback or a numpy warning."""
from __future__ import annotations

import codecs
import json
import os
import signal
import socket
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy

import specc
from specc.errors import dotted
from specc.io import npz
from specc.io.weights import save_arrays, write_atomically
from specc.spec.source import MAX_SPEC_BYTES, read_document
from specc.train.checkpoint import FORMAT, TrainState, load_checkpoint
from support import DIGITS, DIGITS_DATA, run

DATA = np.load(DIGITS_DATA)
IMAGES, LABELS = DATA["images"], DATA["labels"]

TOWER = """\
specc: 1
inputs: {x: {shape: [4]}}
layers:
  out: {type: Dense, units: 2, inputs: x}
outputs: [out]
compile: {loss: mse}
"""

IMPORTS_TOWER = """\
specc: 1
inputs: {a: {shape: [4]}}
models:
  tower: {from: tower.yaml}
layers:
  out: {call: tower, inputs: a}
outputs: [out]
compile: {loss: mse}
"""


@pytest.fixture
def no_hang():
    """Fail, rather than wait forever, if reading blocks (as opening a named pipe does)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def hung(signum, frame):
        raise TimeoutError("reading blocked")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


KINDS = {"fifo": "is a named pipe (FIFO)", "directory": "is a directory", "socket": "is a socket",
         "device": "is a device"}


def make_non_regular(kind: str, path: Path, monkeypatch) -> Path:
    """`path` made a non-regular file of `kind` (a device: a link to /dev/zero, which never ends)."""
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no named pipes here")
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        if not hasattr(socket, "AF_UNIX"):
            pytest.skip("no Unix sockets here")
        monkeypatch.chdir(path.parent)  # a socket's path is limited to about 100 characters: bind a short one
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path.name)  # the socket file stays when the socket is closed
    else:
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero here")
        path.symlink_to("/dev/zero")
    return path


def assert_refused(problems, path: Path, kind: str, what: str):
    (problem,) = problems
    assert str(path) in str(problem), str(problem)
    assert f"{KINDS[kind]}, not {what}; only regular files are read" in str(problem), str(problem)


# -- 1. files that are not regular files -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_spec_that_is_not_a_regular_file(tmp_path, monkeypatch, no_hang, kind):
    spec = make_non_regular(kind, tmp_path / "spec.yaml", monkeypatch)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec)
    assert_refused(caught.value.problems, spec, kind, "a spec file")
    if kind != "directory":  # the command line refuses folders itself
        result = run("validate", spec)
        assert result.returncode == 1 and f"{spec}: {KINDS[kind]}" in result.stderr, result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_imported_spec_that_is_not_a_regular_file(tmp_path, monkeypatch, no_hang, kind):
    make_non_regular(kind, tmp_path / "tower.yaml", monkeypatch)
    spec = tmp_path / "main.yaml"
    spec.write_text(IMPORTS_TOWER)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec)
    (problem,) = caught.value.problems
    assert problem.file == str(spec) and dotted(problem.path) == "models.tower.from", str(problem)
    assert problem.message.startswith(f"tower.yaml: {KINDS[kind]}, not a spec file"), str(problem)
    if kind == "directory":
        (tmp_path / "tower.yaml").rmdir()
    else:
        (tmp_path / "tower.yaml").unlink()
    (tmp_path / "tower.yaml").write_text(TOWER)
    specc.load(spec)  # the control: a regular file is read


@pytest.mark.parametrize("kind", KINDS)
def test_data_file_that_is_not_a_regular_file(tmp_path, monkeypatch, no_hang, kind):
    make_non_regular(kind, tmp_path / "digits.npz", monkeypatch)
    spec = tmp_path / "digits.yaml"
    spec.write_text(DIGITS.read_text().replace("path: data/digits.npz", "path: digits.npz"))
    model = specc.load(spec)
    with pytest.raises(specc.SpecError) as caught:
        model.spec_data()
    (problem,) = caught.value.problems
    assert problem.file == str(spec) and dotted(problem.path) == "data.train", str(problem)
    assert problem.message.startswith(f"digits.npz: {KINDS[kind]}, not an .npz file"), str(problem)


@pytest.mark.parametrize("kind", KINDS)
def test_weights_file_that_is_not_a_regular_file(tmp_path, monkeypatch, no_hang, kind):
    weights = make_non_regular(kind, tmp_path / "w.npz", monkeypatch)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(DIGITS).load_weights(weights)
    assert_refused(caught.value.problems, weights, kind, "an .npz file")
    if kind != "directory":
        result = run("evaluate", DIGITS, "--weights", weights)
        assert result.returncode == 1, result.stderr
        assert f"{weights}: cannot read weights: {KINDS[kind]}" in result.stderr, result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_that_is_not_a_regular_file(tmp_path, monkeypatch, no_hang, kind):
    folder = tmp_path / "run"
    folder.mkdir()
    checkpoint = make_non_regular(kind, folder / "checkpoint.npz", monkeypatch)
    with pytest.raises(specc.SpecError) as caught:
        load_checkpoint(checkpoint)
    assert_refused(caught.value.problems, checkpoint, kind, "an .npz file")
    result = run("train", "--resume", folder)
    assert result.returncode == 1, result.stderr
    assert f"{checkpoint}: cannot read checkpoint: {KINDS[kind]}" in result.stderr, result.stderr


def test_spec_file_beyond_the_size_limit(tmp_path):
    spec = tmp_path / "huge.yaml"
    with open(spec, "wb") as f:
        f.truncate(MAX_SPEC_BYTES + 1)  # sparse: no disk space taken
    with pytest.raises(specc.SpecError) as caught:
        read_document(spec)
    (problem,) = caught.value.problems
    assert problem.file == str(spec)
    assert problem.message == f"has {MAX_SPEC_BYTES + 1:,} bytes; a spec file may have at most {MAX_SPEC_BYTES:,} " \
                              "(64 MiB)", str(problem)


# -- 2. zip bombs, and headers before data ---------------------------------------------------------------------

def write_member(archive: zipfile.ZipFile, name: str, header: dict, data_chunks=()):
    """An .npy member with the header given (which may lie) and the data chunks given."""
    with archive.open(name, "w", force_zip64=True) as member:
        npy.write_array_header_1_0(member, header)
        for chunk in data_chunks:
            member.write(chunk)


def test_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    """100 MB of zeros packed into about 100 kB: before, every array was unpacked before anything was checked."""
    bomb = tmp_path / "bomb.npz"
    rows = 100 * 2 ** 20 // 4
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        write_member(archive, "images.npy", {"descr": "<f4", "fortran_order": False, "shape": (rows,)},
                     [bytes(2 ** 20)] * 100)
        write_member(archive, "labels.npy", {"descr": "<i8", "fortran_order": False, "shape": (1,)}, [bytes(8)])
    assert bomb.stat().st_size < 2 ** 20
    model = specc.load(DIGITS)
    tracemalloc.start()
    try:
        with pytest.raises(specc.SpecError) as caught:
            model.read_data(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, peak  # nothing was unpacked
    (problem,) = caught.value.problems
    assert problem.file == str(bomb)
    assert "array 'images' would unpack from" in problem.message and "zip bomb" in problem.message, str(problem)


def test_array_declaring_more_than_the_archive_holds(tmp_path):
    """A header declaring 30 GB in a file of a few hundred bytes was a MemoryError."""
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        write_member(archive, "scaled/kernel.npy", {"descr": "<f8", "fortran_order": False,
                                                    "shape": (30 * 10 ** 9 // 8,)}, [bytes(64)])
    result = run("evaluate", DIGITS, "--weights", path)
    assert result.returncode == 1
    assert f"{path}: cannot read weights: array 'scaled/kernel' is damaged: its header declares shape " \
           "(3750000000,) of float64 (30.0 GB)" in result.stderr, result.stderr


def test_arrays_beyond_the_memory_of_the_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(npz, "MEMORY_BYTES", 10_000)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(DIGITS).read_data(DIGITS_DATA)
    (problem,) = caught.value.problems
    assert problem.file == str(DIGITS_DATA) and "more than this machine's memory" in problem.message, str(problem)


def test_member_that_is_not_an_npy_array(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, images=IMAGES, labels=LABELS)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("README.txt", "not an array")
        archive.writestr("notes.npy", "not an array either")
    with pytest.raises(specc.SpecError) as caught:
        specc.load(DIGITS).read_data(path)
    messages = [p.message for p in caught.value.problems]
    assert all(p.file == str(path) for p in caught.value.problems)
    assert messages == ["holds 'README.txt', which is not an .npy array (an .npz holds only .npy arrays, as np.savez "
                        "writes)", "array 'notes' is not an .npy array (it does not start as one)"]


def test_unused_arrays_are_not_unpacked_and_unusable_ones_are_refused_by_their_headers(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    images = IMAGES.astype(str)
    np.savez(path, images=images, labels=LABELS, extra=np.zeros(10 ** 6))
    read = []
    original = npz.NpzArchive.read
    monkeypatch.setattr(npz.NpzArchive, "read", lambda self, names=None: read.append(set(names)) or
                        original(self, names))
    with pytest.raises(specc.SpecError) as caught:
        specc.load(DIGITS).read_data(path)
    (problem,) = caught.value.problems
    assert problem.message == f"array 'images' has dtype {images.dtype}; numbers are needed"
    assert read == [{"labels"}]


class _Unpickled:
    """Unpickling this creates the file it names: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def digits_weights(tmp_path: Path, **changes) -> Path:
    arrays = specc.load(DIGITS).get_weights()
    arrays.update(changes)
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    return path


def test_weights_of_python_objects_are_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    objects = np.empty((64, 64), dtype=object)
    objects[:] = _Unpickled(marker)
    weights = digits_weights(tmp_path, **{"hidden/kernel": objects})
    result = run("evaluate", DIGITS, "--weights", weights)
    assert result.returncode == 1
    assert f"{weights}: cannot read weights: array 'hidden/kernel' holds Python objects, which are never loaded" \
           in result.stderr, result.stderr
    assert not marker.exists()


# -- 3. malformed contents -------------------------------------------------------------------------------------

def digits_data_spec(tmp_path: Path, **arrays) -> Path:
    """The digits spec reading data.npz (with sample weights `w`) beside it, which holds `arrays`."""
    spec = tmp_path / "digits.yaml"
    spec.write_text(DIGITS.read_text().replace("path: data/digits.npz", "path: data.npz").replace(
        "targets: {digit: labels}", "targets: {digit: labels}\n    sample_weight: w"))
    np.savez(tmp_path / "data.npz", **{"images": IMAGES, "labels": LABELS, "w": np.ones(len(LABELS)), **arrays})
    return spec


@pytest.mark.parametrize("array, key", [("images", "data.train.inputs.images"),
                                        ("labels", "data.train.targets.digit"), ("w", "data.train.sample_weight")])
def test_single_value_arrays(tmp_path, array, key):
    """A 0-d label array was an internal error (len() of unsized object)."""
    spec = digits_data_spec(tmp_path, **{array: np.array(3)})
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec).spec_data()
    (problem,) = caught.value.problems
    assert problem.file == str(spec) and dotted(problem.path) == key, str(problem)
    assert problem.message.startswith(f"data.npz: array '{array}' is a single value (shape ()); data has one row "
                                      "per sample"), str(problem)


# -- 4. hand-edited checkpoints --------------------------------------------------------------------------------

def checkpoint_state(**edits) -> dict:
    state = {"format": FORMAT, **TrainState.fresh(0, 5, 32).as_json()}
    state["run"] = {"spec": "digits.yaml", "rendered": {"fit": {"epochs": 5}}, "rows": 100}
    state.update(edits)
    return state


def write_checkpoint(folder: Path, training_state: dict, **arrays) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "checkpoint.npz"
    np.savez(path, **{"weights/d/kernel": np.zeros((2, 2), np.float32), "optimizer/iterations": np.array(0),
                      "optimizer/learning_rate": np.array(0.001), "state": np.array(json.dumps(training_state)),
                      **arrays})
    return path


def test_the_checkpoint_of_the_edits_below_loads(tmp_path):
    state = load_checkpoint(write_checkpoint(tmp_path, checkpoint_state(epoch=2, step=4))).state
    assert (state.epoch, state.step, state.batch_size) == (2, 4, 32)


def without(field: str) -> dict:
    state = checkpoint_state()
    del state[field]
    return state


@pytest.mark.parametrize("state, part", [
    (checkpoint_state(batch_size=0), "'batch_size' is 0; it must be a whole number, at least 1"),
    (without("epoch"), "no 'epoch' field"),
    (checkpoint_state(epoch=-5), "'epoch' is -5; it must be a whole number, at least 0"),
    (checkpoint_state(epochs="5"), "'epochs' is \"5\"; it must be a whole number, at least 1"),
    (checkpoint_state(batch_size=32.0), "'batch_size' is 32.0; it must be a whole number"),
    (checkpoint_state(finished="yes"), "'finished' is \"yes\"; it must be true or false"),
    (checkpoint_state(epoch=7), "'epoch' is 7, beyond 'epochs' (5)"),
    (checkpoint_state(step=9), "'step' is 9, beyond the 4 batches of an epoch (100 rows in batches of 32)"),
    (checkpoint_state(epoch=5, step=1), "'step' is 1 after the last epoch"),
    (checkpoint_state(rng={"bit_generator": "PCG64"}), "'rng' is {\"bit_generator\": \"PCG64\"}; it must be the "
                                                       "state of numpy's PCG64 generator"),
    (checkpoint_state(rng={**TrainState.fresh(0, 5, 32).rng, "state": {"state": -1, "inc": 1}}), "'rng' is"),
    (checkpoint_state(running=[1, 2]), "'running' is [1, 2]"),
    (checkpoint_state(history=[{"loss": "low"}]), "'history' is"),
    (checkpoint_state(stopped={"reason": "nan"}), "'stopped' is"),
    (checkpoint_state(callbacks={"wait": 1}), "'callbacks' is"),
    (checkpoint_state(run={"rows": 0}), "'run' is"),
    (checkpoint_state(surprise=1), "unknown field 'surprise'"),
    ([1, 2], "it is list in JSON, not an object"),
], ids=["batch_size-0", "missing-epoch", "negative-epoch", "epochs-text", "batch_size-float", "finished-text",
        "epoch-beyond-epochs", "step-beyond-batches", "step-after-the-end", "rng-incomplete", "rng-negative",
        "running-list", "history-text", "stopped-incomplete", "callbacks-object", "run-no-rows", "unknown-field",
        "not-an-object"])
def test_hand_edited_checkpoint(tmp_path, state, part):
    path = write_checkpoint(tmp_path / "run", state)
    with pytest.raises(specc.SpecError) as caught:
        load_checkpoint(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert problem.message.startswith("has a damaged training state: ") and part in problem.message, str(problem)
    result = run("train", "--resume", tmp_path / "run")
    assert result.returncode == 1 and f"{path}: has a damaged training state: " in result.stderr, result.stderr


@pytest.mark.parametrize("arrays, part", [
    ({"weights/d/kernel": np.full((2, 2), np.nan, np.float32)},
     "array 'weights/d/kernel' has NaN or infinite values (first at index (0, 0))"),
    ({"optimizer/iterations": np.array("many")}, "array 'optimizer/iterations' has dtype <U4; numbers are needed"),
    ({"optimizer/learning_rate": np.array([0.1, 0.2])},
     "array 'optimizer/learning_rate' is float64 of shape (2,); it must be a number, not negative"),
    ({"state": np.array([1.0])}, "has a damaged training state: array 'state' is float64 of shape (1,), not JSON"),
], ids=["nan-weights", "text-iterations", "learning-rates", "numeric-state"])
def test_checkpoint_with_unusable_arrays(tmp_path, arrays, part):
    path = write_checkpoint(tmp_path, checkpoint_state(), **arrays)
    with pytest.raises(specc.SpecError) as caught:
        load_checkpoint(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path) and part in problem.message, str(problem)


def test_checkpoint_without_the_optimizer_step_count(tmp_path):
    path = tmp_path / "checkpoint.npz"
    np.savez(path, **{"weights/d/kernel": np.zeros(2), "optimizer/learning_rate": np.array(0.1),
                      "state": np.array(json.dumps(checkpoint_state()))})
    with pytest.raises(specc.SpecError) as caught:
        load_checkpoint(path)
    assert [p.message for p in caught.value.problems] == ["has no array 'optimizer/iterations'"]


# -- 5. weights with unusable values ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, part", [
    (np.nan, "array 'hidden/kernel' has NaN or infinite values (first at index (3, 7))"),
    (np.inf, "array 'hidden/kernel' has NaN or infinite values (first at index (3, 7))"),
    ("text", "array 'hidden/kernel' has dtype <U32; numbers are needed"),
], ids=["nan", "inf", "strings"])
def test_weights_with_unusable_values(tmp_path, value, part):
    kernel = np.zeros((64, 64), np.float32 if not isinstance(value, str) else "<U32")
    kernel[3, 7] = value
    weights = digits_weights(tmp_path, **{"hidden/kernel": kernel})
    result = run("evaluate", DIGITS, "--weights", weights)
    assert result.returncode == 1
    assert f"{weights}: {part}" in result.stderr, result.stderr


def test_weights_of_a_checkpoint_are_checked_too(tmp_path):
    path = write_checkpoint(tmp_path, checkpoint_state(), **{"weights/d/kernel": np.full(2, np.inf)})
    with pytest.raises(specc.SpecError) as caught:
        specc.load(DIGITS).load_weights(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path) and "array 'weights/d/kernel' has NaN or infinite values" in problem.message


# -- 6. true messages, and no numpy warnings -------------------------------------------------------------------

def data_problem(spec: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from numpy fails the test
        with pytest.raises(specc.SpecError) as caught:
            specc.load(spec).spec_data()
    (problem,) = caught.value.problems
    assert problem.file == str(spec) and "data.npz: " in problem.message, str(problem)
    return problem


@pytest.mark.parametrize("value, part", [
    (np.inf, "array 'labels' has NaN or infinite values (first at row 5); class labels are integers"),
    (np.nan, "array 'labels' has NaN or infinite values (first at row 5); class labels are integers"),
    (1e300, "array 'labels' has label 1e+300 at row 5, outside [0, 10) of the output's classes"),
], ids=["inf", "nan", "huge"])
def test_float_labels_beyond_integers(tmp_path, value, part):
    """An infinite label was reported as label -9223372036854775808, with a RuntimeWarning."""
    labels = LABELS.astype(np.float64)
    labels[5] = value
    problem = data_problem(digits_data_spec(tmp_path, labels=labels))
    assert part in problem.message and "-9223372036854775808" not in problem.message, str(problem)


def test_float64_inputs_beyond_float32(tmp_path):
    """1e300 became infinite in float32 with a RuntimeWarning, and was called 'NaN or infinite'."""
    images = IMAGES.astype(np.float64)
    images[3, 2, 1] = -1e300
    problem = data_problem(digits_data_spec(tmp_path, images=images))
    assert dotted(problem.path) == "data.train.inputs.images"
    assert "array 'images' has values beyond float32's range (±3.4e+38), the first -1e+300 at row 3" \
           in problem.message, str(problem)


def test_float64_targets_and_sample_weights_beyond_float32(tmp_path):
    spec = digits_data_spec(tmp_path, w=np.where(np.arange(len(LABELS)) == 8, 1e300, 1.0))
    problem = data_problem(spec)
    assert dotted(problem.path) == "data.train.sample_weight"
    assert "array 'w' has values beyond float32's range" in problem.message and "at row 8" in problem.message
    spec.write_text(spec.read_text().replace("sparse_categorical_crossentropy", "mse").replace(
        "    sample_weight: w\n", ""))
    onehot = np.eye(10)[LABELS]
    onehot[4, 1] = 1e300
    np.savez(tmp_path / "data.npz", images=IMAGES, labels=onehot)
    problem = data_problem(spec)
    assert "array 'labels' has values beyond float32's range" in problem.message and "at row 4" in problem.message


def test_the_most_negative_integer_is_beyond_float32_exact_integers(tmp_path):
    """np.abs of the most negative int64 is itself, which passed the check of integers float32 holds exactly."""
    images = IMAGES.astype(np.int64)
    images[0, 0, 0] = np.iinfo(np.int64).min
    problem = data_problem(digits_data_spec(tmp_path, images=images))
    assert "array 'images' has integers beyond 16777216" in problem.message, str(problem)


# -- 7. byte order marks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_spec_with_a_byte_order_mark(tmp_path, suffix):
    spec = tmp_path / f"tower{suffix}"
    text = json.dumps({"specc": 1, "inputs": {"x": {"shape": [4]}}, "layers": {
        "out": {"type": "Dense", "units": 2, "inputs": "x"}}, "outputs": ["out"], "compile": {"loss": "mse"}},
        indent=1) if suffix == ".json" else TOWER
    spec.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    assert specc.load(spec).graph.shapes["out"] == (2,)
    spec.write_bytes(codecs.BOM_UTF8 + text.replace("Dense", "Dence").encode("utf-8"))
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec)
    (problem,) = caught.value.problems
    line = text.splitlines().index(next(li for li in text.splitlines() if "Dense" in li)) + 1
    assert problem.line == line and "Dence" in problem.message, str(problem)


def test_spec_that_is_not_utf8_is_located(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(TOWER.replace("out: {", "out\xe9: {").encode("latin-1"))
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec)
    (problem,) = caught.value.problems
    assert problem.message == "is not UTF-8 text (invalid continuation byte, at byte 0xe9); save it as UTF-8"
    assert (problem.file, problem.line, problem.column) == (str(spec), 4, 6)


# -- 8. atomic writes leave no temporary files -----------------------------------------------------------------

def test_interrupted_write_removes_its_temporary_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "predictions.npz"
    save_arrays(path, {"out": np.arange(3)})

    def interrupted(f):
        f.write(b"PK partial")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.npz"]
    assert np.array_equal(np.load(path)["out"], np.arange(3))


def test_terminated_write_removes_its_temporary(tmp_path):
    """SIGTERM (`kill`) during a write ended the process on the spot, leaving a `.NAME.*.tmp` file."""
    path = tmp_path / "predictions.npz"
    save_arrays(path, {"out": np.arange(3)})
    program = ("import os, signal, sys\n"
               "from specc.io.weights import write_atomically\n"
               "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
               "def killed(f):\n"
               "    f.write(b'PK partial')\n"
               "    os.kill(os.getpid(), signal.SIGTERM)\n"
               "    f.write(b'never')\n"
               "write_atomically(sys.argv[1], killed)\n")
    done = subprocess.run([sys.executable, "-c", program, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[1])
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.npz"]
    assert np.array_equal(np.load(path)["out"], np.arange(3))


def test_arrays_named_like_savez_arguments_are_saved(tmp_path):
    """np.savez takes `file` and `allow_pickle` for its own: an output of either name failed to save."""
    path = tmp_path / "predictions.npz"
    save_arrays(path, {"file": np.arange(3), "allow_pickle": np.ones(2)})
    with np.load(path) as saved:
        assert np.array_equal(saved["file"], np.arange(3)) and np.array_equal(saved["allow_pickle"], np.ones(2))


# -- 9. large specs are not alias bombs ------------------------------------------------------------------------

def many_layers(count: int) -> dict:
    layers = {f"dense_{i}": {"type": "Dense", "units": 4, "inputs": f"dense_{i - 1}" if i else "x"}
              for i in range(count)}
    return {"specc": 1, "inputs": {"x": {"shape": [4]}}, "layers": layers, "outputs": [f"dense_{count - 1}"],
            "compile": {"loss": "mse"}}


def as_yaml(spec: dict) -> str:
    """Block style at the top and in `layers`, each value in flow style (JSON is that too): a line per layer."""
    lines = []
    for key, value in spec.items():
        if key == "layers":
            lines += ["layers:"] + [f"  {name}: {json.dumps(layer)}" for name, layer in value.items()]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_spec_of_many_layers_is_read(tmp_path, monkeypatch, suffix):
    """A spec of 150,000 layers took 39 s to be refused as 'YAML aliases' expanding it: the guard counted every
    value, not the values aliases added. (Reading it now takes a few seconds; this test reads a smaller one,
    with a lower limit that its 80,000 values pass as those of 150,000 layers passed the real one.)"""
    monkeypatch.setattr("specc.spec.source.MAX_VALUES", 50_000)
    spec = tmp_path / f"many{suffix}"
    spec.write_text(as_yaml(many_layers(20_000)) if suffix == ".yaml" else json.dumps(many_layers(20_000)))
    data, source = read_document(spec)
    assert len(data["layers"]) == 20_000
    assert source.values[("layers", "dense_19999", "units")][0] == (20_003 if suffix == ".yaml" else 1)


def test_a_few_aliases_in_a_large_spec_are_fine(tmp_path):
    spec = tmp_path / "aliased.yaml"
    text = as_yaml(many_layers(20_000)).replace("layers:\n", "defaults: &dense {type: Dense, units: 4}\nlayers:\n")
    spec.write_text(text.replace('  dense_5: {"type": "Dense", "units": 4, "inputs": "dense_4"}',
                                 "  dense_5: {<<: *dense, inputs: dense_4}"))
    data, _ = read_document(spec)
    assert data["layers"]["dense_5"] == {"type": "Dense", "units": 4, "inputs": "dense_4"}


def test_aliases_expanding_a_small_spec_are_refused_at_their_key(tmp_path):
    spec = tmp_path / "laughs.yaml"
    lines = ["specc: 1", "a: &a [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]"
              for previous, name in zip("abcde", "bcdef")]
    spec.write_text("\n".join(lines) + "\n")
    with pytest.raises(specc.SpecError) as caught:
        read_document(spec)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, dotted(problem.path)) == (str(spec), 7, "f"), str(problem)
    assert "YAML aliases (*name) expand this document to more than 200,000 values" in problem.message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_history_that_is_a_pipe_is_refused_at_once(tmp_path):
    pipe = tmp_path / "history.csv"
    os.mkfifo(pipe)
    result = run("history", pipe)
    assert result.returncode == 1
    assert f"{pipe}: is a named pipe (FIFO), not a history file" in result.stderr
