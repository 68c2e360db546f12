"""`specc train --engine keras`: Keras' fit trains the spec, writing the run folder the numba engine writes;
the same start, plain SGD and no shuffling give both engines the same losses; two (simulated) devices train
data parallel to the weights one device reaches. Skipped without Keras."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import specc
from specc.io.weights import save_arrays
from support import digits, run

SGD = {"optimizer: adam": "optimizer: {type: sgd, learning_rate: 0.05}"}


def history(folder: Path) -> list[dict[str, float]]:
    with open(folder / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, keras):
    """Two epochs of digits with plain SGD and no shuffling, by each engine."""
    folder = tmp_path_factory.mktemp("engines")
    spec = digits(folder, fit="{epochs: 2, batch_size: 32, shuffle: false}", **SGD)
    # small weights: no probability near 0 or 1, where Keras' clipped crossentropy has no gradient and
    # specc's passes one through (its loss kernels treat the clipping as the identity)
    start = folder / "start.npz"
    save_arrays(start, {k: v * 0.1 for k, v in specc.load(spec).get_weights().items()})
    for engine in ("numba", "keras"):
        result = run("train", spec, "--engine", engine, "--out", folder / engine, "--weights", start, "--quiet")
        assert result.returncode == 0, result.stderr
    return spec, folder


def test_both_engines_have_the_same_losses(runs):
    _, folder = runs
    ours, theirs = history(folder / "numba"), history(folder / "keras")
    assert list(ours[0]) == list(theirs[0])  # the same columns, in the same order
    for a, b in zip(ours, theirs):
        for column in ("loss", "val_loss"):
            assert a[column] == pytest.approx(b[column], rel=1e-3), (column, a, b)
        assert abs(a["val_accuracy"] - b["val_accuracy"]) < 0.01  # Keras counts one padding row of 359


def test_keras_run_folder_works_with_predict_and_evaluate(runs):
    spec, folder = runs
    assert {p.name for p in (folder / "keras").iterdir()} >= {"weights.npz", "history.csv", "checkpoint.npz",
                                                             "spec.yaml"}
    result = run("evaluate", spec, "--weights", folder / "keras" / "weights.npz")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("accuracy: ")[1])
    assert accuracy == pytest.approx(history(folder / "keras")[-1]["val_accuracy"], abs=0.01)
    model = specc.load(spec)
    model.load_weights(folder / "keras" / "checkpoint.npz")  # the checkpoint's weights load too


def test_resume_continues_the_keras_run(runs, tmp_path):
    spec, folder = runs
    out = tmp_path / "resumed"
    assert run("train", spec, "--engine", "keras", "--epochs", "1", "--out", out, "--weights", folder / "start.npz",
               "--quiet").returncode == 0
    result = run("train", "--engine", "keras", "--resume", out, "--epochs", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    straight, resumed = history(folder / "keras"), history(out)
    assert [row["loss"] for row in resumed] == pytest.approx([row["loss"] for row in straight], rel=1e-5)


def test_two_devices_train_data_parallel(runs, tmp_path):
    """One epoch on two simulated CPU devices: Keras reports both, and the weights are the one-device run's."""
    spec, _ = runs
    weights = {}
    for devices in (1, 2):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        out = tmp_path / f"devices{devices}"
        result = subprocess.run([sys.executable, "-m", "specc", "train", str(spec), "--engine", "keras", "--epochs",
                                 "1", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"on {devices} device(s)" in result.stderr, result.stderr
        with np.load(out / "weights.npz") as saved:
            weights[devices] = dict(saved)
    for key, value in weights[1].items():
        np.testing.assert_allclose(weights[2][key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_keras_engine_reaches_the_numba_engines_accuracy(keras, tmp_path):
    spec = digits(tmp_path, fit="{epochs: 10, batch_size: 32, shuffle: true}")
    final = {}
    for engine in ("numba", "keras"):
        result = run("train", spec, "--engine", engine, "--out", tmp_path / engine, "--quiet")
        assert result.returncode == 0, result.stderr
        final[engine] = history(tmp_path / engine)[-1]["val_accuracy"]
    assert final["numba"] > 0.9
    assert final["keras"] >= final["numba"] - 0.02, final


TWO_OUTPUTS = """\
specc: 1
name: two_outputs
inputs:
  a: {shape: [6]}
  b: {shape: [3]}
layers:
  shared: {type: Dense, units: 4, activation: tanh}
  ha: {call: shared, inputs: a}
  merged: {type: Concatenate, inputs: [ha, b]}
  out1: {type: Dense, units: 1, activation: sigmoid, inputs: merged}
  out2: {type: Dense, units: 3, activation: softmax, inputs: ha}
outputs: [out1, out2]
compile:
  optimizer: {type: sgd, learning_rate: 0.1}
  loss: {out1: binary_crossentropy, out2: sparse_categorical_crossentropy}
  loss_weights: {out1: 1.0, out2: 0.5}
  metrics: {out1: [accuracy], out2: [accuracy]}
data: {train: data.npz, validation_split: 0.25}
fit: {epochs: 2, batch_size: 10, shuffle: false}
"""


def test_several_outputs_log_the_same_columns_and_losses(keras, tmp_path):
    spec = tmp_path / "two_outputs.yaml"
    spec.write_text(TWO_OUTPUTS)
    assert run("synth", spec, "-o", tmp_path / "data.npz", "--rows", "40").returncode == 0
    for engine in ("numba", "keras"):
        result = run("train", spec, "--engine", engine, "--out", tmp_path / engine, "--quiet")
        assert result.returncode == 0, result.stderr
    ours, theirs = history(tmp_path / "numba"), history(tmp_path / "keras")
    assert list(ours[0]) == list(theirs[0])
    for a, b in zip(ours, theirs):
        for column in a:
            assert a[column] == pytest.approx(b[column], rel=1e-4, abs=1e-6), column
