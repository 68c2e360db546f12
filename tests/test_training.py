"""Training the digits spec: it learns, it is deterministic per seed, and it can start from given weights."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import specc

ROOT = Path(__file__).parents[1]
DIGITS = ROOT / "specs" / "digits.yaml"


def digits_with_seed(tmp_path: Path, seed: int) -> Path:
    """The digits spec with another seed, reading the shipped data."""
    text = DIGITS.read_text()
    assert text.count("seed: 0") == 1 and text.count("path: data/digits.npz") == 1
    text = text.replace("seed: 0", f"seed: {seed}")
    text = text.replace("path: data/digits.npz", f"path: {ROOT / 'specs' / 'data' / 'digits.npz'}")
    path = tmp_path / f"digits_{seed}.yaml"
    path.write_text(text)
    return path


def trained_weights(spec: Path, epochs: int) -> tuple[dict[str, np.ndarray], list[dict]]:
    model = specc.load(spec)
    history = model.fit(epochs=epochs)
    return model.get_weights(), history


def test_digits_learns():
    model = specc.load(DIGITS)
    assert model.spec.fit.epochs == 30
    history = model.fit()
    assert len(history) == 30
    assert history[-1]["val_accuracy"] >= 0.95, history[-1]
    assert history[-1]["loss"] < history[0]["loss"] / 10
    evaluated = model.evaluate()
    assert evaluated["accuracy"] == pytest.approx(history[-1]["val_accuracy"])
    assert evaluated["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)


def test_the_digits_convnet_learns_at_least_as_well_as_the_dense_model():
    """specs/digits_convnet.yaml (Conv2D, BatchNormalization, Dropout) trained as shipped, on the same validation
    rows as specs/digits.yaml trained as shipped."""
    dense = specc.load(DIGITS).fit()[-1]["val_accuracy"]
    convnet = specc.load(DIGITS.parent / "digits_convnet.yaml").fit()[-1]["val_accuracy"]
    assert convnet >= max(0.97, dense), (convnet, dense)


def test_same_seed_same_weights(tmp_path):
    first, first_history = trained_weights(DIGITS, epochs=3)
    second, second_history = trained_weights(DIGITS, epochs=3)
    assert sorted(first) == sorted(second) == sorted(
        ["scaled/kernel", "scaled/bias", "hidden/kernel", "hidden/bias", "digit/kernel", "digit/bias"])
    for key in first:
        assert first[key].dtype == np.float32
        assert np.array_equal(first[key], second[key]), key
    assert first_history == second_history

    other, other_history = trained_weights(digits_with_seed(tmp_path, 1), epochs=3)
    for key in first:
        assert not np.array_equal(first[key], other[key]), key
    assert other_history != first_history


def test_seed_in_spec_matters_before_training(tmp_path):
    zero = specc.load(digits_with_seed(tmp_path, 0)).get_weights()
    again = specc.load(DIGITS).get_weights()
    one = specc.load(digits_with_seed(tmp_path, 1)).get_weights()
    assert all(np.array_equal(zero[k], again[k]) for k in zero)
    assert not np.array_equal(zero["scaled/kernel"], one["scaled/kernel"])
    assert np.array_equal(zero["scaled/bias"], one["scaled/bias"])  # biases start at zero either way


def test_train_from_given_weights(tmp_path):
    start = tmp_path / "start.npz"
    model = specc.load(DIGITS)
    fresh_loss = model.evaluate()["loss"]
    history = model.fit(epochs=2)
    model.save_weights(start)

    # the loss before fine-tuning is the loss of those weights
    reloaded = specc.load(DIGITS)
    reloaded.load_weights(start)
    before = reloaded.evaluate()["loss"]
    assert before == pytest.approx(history[-1]["val_loss"], rel=1e-6)
    assert before < fresh_loss / 2

    out = tmp_path / "tuned"
    result = subprocess.run([sys.executable, "-m", "specc", "train", str(DIGITS), "--weights", str(start),
                             "--epochs", "1", "--out", str(out), "--quiet"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    with open(out / "history.csv", newline="") as f:
        (tuned,) = list(csv.DictReader(f))
    # one epoch from the given weights is far better than the first epoch from scratch, and better still
    assert float(tuned["loss"]) < history[0]["loss"] / 2
    assert float(tuned["val_loss"]) < before

    with np.load(out / "weights.npz") as after, np.load(start) as given:
        assert sorted(after.files) == sorted(given.files)
        assert all(not np.array_equal(after[k], given[k]) for k in given.files)  # it did train


def test_the_imbalanced_classification_spec_logs_every_metric(tmp_path):
    """specs/fraud_detection.yaml on synthesized data (one fraud in a hundred rows): every metric it names, and
    the schedule's learning rate, in the history, for training and validation."""
    from specc.synth import synthesize
    model = specc.load(DIGITS.parent / "fraud_detection.yaml")
    arrays = synthesize(model.graph, model.losses(), 4096, seed=3)
    arrays["fraud"] = (np.random.default_rng(3).uniform(size=(4096, 1)) < 0.01).astype(np.float32)
    train, validation = model.split_data(arrays) if hasattr(model, "split_data") else (None, None)
    from specc.io.data import Dataset, split
    data = Dataset({"features": arrays["features"]}, {"fraud": arrays["fraud"]})
    history = model.fit(epochs=2, data=split(data, 0.2))
    metrics = ["false_negatives", "false_positives", "true_negatives", "true_positives", "precision", "recall",
               "auc", "pr_auc"]
    for column in ["loss", *metrics, *(f"val_{m}" for m in ["loss", *metrics]), "learning_rate"]:
        assert all(np.isfinite(epoch[column]) for epoch in history), column
    assert history[0]["true_positives"] + history[0]["false_negatives"] > 0  # the rare class is there
