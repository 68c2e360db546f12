"""Callbacks (Keras' semantics, checked against hand-worked sequences), their spec errors, sample and class
weights, NaN stops, and the progress output."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import specc
from specc.errors import dotted
from specc.train import callbacks as C
from specc.train.checkpoint import load_checkpoint
from specc.train.losses import LOSSES, default_loss
from specc.train.progress import Progress
from support import DIGITS, DIGITS_DATA, StopAfter, assert_keras_arguments, digits, keras_class_of


def problems_of(spec: Path) -> list:
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec)
    for p in caught.value.problems:
        assert p.file == str(spec) and p.line is not None, str(p)
    return caught.value.problems


def located(spec: Path, needle: str) -> tuple[int, int]:
    text = spec.read_text()
    assert text.count(needle) == 1, needle
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


# -- the format -----------------------------------------------------------------------------------------------

def test_a_callback_never_writes_outside_its_run_folder(tmp_path):
    """Validation refuses such names; the trainer refuses them too, should one get past it (a symlink)."""
    from specc.train.callbacks import RunFiles, Trainer
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path)
    trainer = Trainer(None, None, None, [], RunFiles(folder), print)
    assert trainer.resolve("best.npz") == folder / "best.npz"
    for escaping in ("../x.npz", str(tmp_path / "x.npz"), "link/x.npz"):
        with pytest.raises(AssertionError, match="outside the run folder"):
            trainer.resolve(escaping)


def test_callbacks_by_snake_name_keras_class_name_or_bare_string(tmp_path):
    spec = digits(tmp_path, "{epochs: 3, callbacks: [terminate_on_nan, {type: EarlyStopping, patience: 2}, "
                            "{type: ReduceLROnPlateau}, {type: model_checkpoint, save_best_only: true}]}")
    callbacks = specc.load(spec).spec.fit.callbacks
    assert [c.type for c in callbacks] == ["terminate_on_nan", "early_stopping", "reduce_lr_on_plateau",
                                           "model_checkpoint"]
    stopping, plateau, checkpoint = callbacks[1:]
    # Keras' defaults
    assert (stopping.monitor, stopping.patience, stopping.min_delta, stopping.mode, stopping.baseline,
            stopping.restore_best_weights) == ("val_loss", 2, 0.0, "auto", None, False)
    assert (plateau.monitor, plateau.factor, plateau.patience, plateau.min_delta, plateau.cooldown,
            plateau.min_lr) == ("val_loss", 0.1, 10, 1e-4, 0, 0.0)
    assert (checkpoint.monitor, checkpoint.path) == ("val_loss", "best.npz")
    assert C.ModelCheckpointSettings(type="model_checkpoint").path == "checkpoint.npz"


@pytest.mark.parametrize("entry, at, path, parts", [
    ("[early_stoping]", "early_stoping", "fit.callbacks[0]",
     ["unknown callback 'early_stoping' (did you mean 'early_stopping'?)", "known: early_stopping, model_checkpoint"]),
    ("[{type: EarlyStoping, patience: 2}]", "EarlyStoping", "fit.callbacks[0].type",
     ["unknown callback 'EarlyStoping' (did you mean 'EarlyStopping'?)"]),
    ("[{patience: 2}]", "{patience: 2}", "fit.callbacks[0]", ["missing `type:` (one of early_stopping, "]),
    ("[{type: early_stopping, patiense: 2}]", "patiense", "fit.callbacks[0].patiense",
     ["unknown key 'patiense' (did you mean 'patience'?)", "allowed here: monitor, min_delta, patience"]),
    ("[{type: reduce_lr_on_plateau, factor: 2}]", "2}", "fit.callbacks[0].factor", ["less than 1"]),
    ("[{type: early_stopping, monitor: val_acc}]", "val_acc", "fit.callbacks[0].monitor",
     ["early_stopping monitors 'val_acc', which the run does not log (did you mean 'val_accuracy'?)",
      "it logs: loss, accuracy, val_loss, val_accuracy"]),
    ("[{type: model_checkpoint, filepath: 'best-{val_los:.3f}.npz'}]", "'best-", "fit.callbacks[0].filepath",
     ["'{val_los}' in 'best-{val_los:.3f}.npz' is not a name the run logs (did you mean 'val_loss'?)"]),
    ("[{type: model_checkpoint, filepath: best.h5}]", "best.h5", "fit.callbacks[0].filepath", ["must end in .npz"]),
    ("[{type: model_checkpoint, filepath: checkpoint.npz, save_best_only: true}]", "checkpoint.npz",
     "fit.callbacks[0].filepath", ["the run's own checkpoint", "e.g. best.npz"]),
    ("[{type: model_checkpoint, filepath: ../../escape.npz}]", "../../", "fit.callbacks[0].filepath",
     ["'../../escape.npz' leaves the run folder"]),
    ("[{type: model_checkpoint, filepath: /tmp/anywhere.npz}]", "/tmp/anywhere", "fit.callbacks[0].filepath",
     ["'/tmp/anywhere.npz' leaves the run folder"]),
    ("[{type: csv_logger, filename: ../log.csv}]", "../log", "fit.callbacks[0].filename",
     ["'../log.csv' leaves the run folder"]),
    ("[{type: csv_logger, filename: weights.npz}]", "weights.npz", "fit.callbacks[0].filename",
     ["'weights.npz' is the run's own file", "e.g. log.csv"]),
    ("[{type: csv_logger, filename: history.csv, separator: ';'}]", "history.csv", "fit.callbacks[0].filename",
     ["'history.csv' is the run's own history"]),
    ("[{type: model_checkpoint, filepath: spec.yaml}]", "spec.yaml", "fit.callbacks[0].filepath",
     ["must end in .npz"]),
    ("[{type: model_checkpoint, filepath: ./weights.npz}]", "./weights", "fit.callbacks[0].filepath",
     ["'weights.npz' is the run's own file", "e.g. best.npz"]),
    ("[{type: model_checkpoint, filepath: 'e{epoch:4000000000d}.npz'}]", "'e{", "fit.callbacks[0].filepath",
     ["wider than 64 characters"]),
], ids=["unknown-name", "unknown-type", "no-type", "unknown-key", "out-of-range", "monitor-not-logged",
        "filepath-field", "filepath-suffix", "filepath-is-resume-checkpoint", "filepath-escapes",
        "filepath-absolute", "filename-escapes", "filename-is-weights", "filename-is-history-in-another-format",
        "filepath-is-spec", "filepath-is-weights", "filepath-width"])
def test_callback_errors_are_located(tmp_path, entry, at, path, parts):
    spec = digits(tmp_path, f"{{epochs: 3, callbacks: {entry}}}")
    (problem,) = problems_of(spec)
    assert dotted(problem.path) == path, str(problem)
    assert (problem.line, problem.column) == located(spec, at), str(problem)
    for part in parts:
        assert part in problem.message, str(problem)


def test_default_monitor_without_validation_data_names_the_entry(tmp_path):
    spec = digits(tmp_path, "{epochs: 3, callbacks: [early_stopping]}",
                  **{"  validation_split: 0.2\n": ""})
    (problem,) = problems_of(spec)
    assert dotted(problem.path) == "fit.callbacks[0].monitor"
    assert problem.line == located(spec, "early_stopping")[0]
    assert "early_stopping monitors 'val_loss' (the default), but the run has no validation data" in problem.message
    # monitoring what the run does log is fine
    digits(tmp_path, "{epochs: 3, callbacks: [{type: early_stopping, monitor: loss}]}",
           **{"  validation_split: 0.2\n": ""})
    specc.load(tmp_path / "digits.yaml")


def test_monitor_checked_when_data_is_given_in_code(tmp_path):
    spec = tmp_path / "nodata.yaml"
    spec.write_text(DIGITS.read_text().split("data:")[0] + "fit: {epochs: 1, callbacks: [early_stopping]}\n")
    model = specc.load(spec)  # no data in the spec: whether there is validation data is not known yet
    train, _ = specc.load(DIGITS).spec_data()
    with pytest.raises(specc.SpecError) as caught:
        model.fit(data=(train, None))
    (problem,) = caught.value.problems
    assert (problem.file, dotted(problem.path)) == (str(spec), "fit.callbacks[0].monitor")
    assert "no validation data" in problem.message


@pytest.mark.parametrize("class_weight, at, part", [
    ("{0: 1.0, 10: 2.0}", "10:", "class 10 is outside [0, 10) of output 'digit'"),
], ids=["class-out-of-range"])
def test_class_weight_errors(tmp_path, class_weight, at, part):
    spec = digits(tmp_path, f"{{epochs: 1, class_weight: {class_weight}}}")
    (problem,) = problems_of(spec)
    assert (problem.line, problem.column) == located(spec, at)
    assert part in problem.message


def test_class_weight_needs_one_classifying_output(tmp_path):
    spec = digits(tmp_path, "{epochs: 1, class_weight: {0: 2}}",
                  **{"loss: sparse_categorical_crossentropy": "loss: mse",
                     "targets: {digit: labels}": "targets: {digit: onehot}"})
    (problem,) = problems_of(spec)
    assert dotted(problem.path) == "fit.class_weight"
    assert "output 'digit' of shape (None, 10) with loss mse has none" in problem.message


def test_render_shows_callback_defaults(tmp_path):
    from specc.spec import render
    spec = digits(tmp_path, "{epochs: 3, callbacks: [{type: early_stopping, patience: 2}]}")
    rendered = render(specc.load(spec).spec)
    assert rendered["fit"]["callbacks"] == [{"type": "early_stopping", "monitor": "val_loss", "min_delta": 0.0,
                                             "patience": 2, "mode": "auto", "restore_best_weights": False,
                                             "start_from_epoch": 0}]


def test_rendered_class_weights_keep_integer_classes_and_load_back(tmp_path):
    import yaml

    from specc.spec import render
    spec = digits(tmp_path, "{epochs: 1, class_weight: {0: 2.0, '3': 0.5}}")
    text = yaml.safe_dump(render(specc.load(spec).spec), sort_keys=False)
    assert "class_weight:\n    0: 2.0\n    3: 0.5\n" in text
    again = tmp_path / "rendered.yaml"
    again.write_text(text)
    assert specc.load(again).spec.fit.class_weight == {0: 2.0, 3: 0.5}


# -- Keras semantics, epoch by epoch ------------------------------------------------------------------------------

class Stub:
    """What a callback acts on, without a model: weights, an optimizer's learning rate, the words it says."""

    def __init__(self, learning_rate=1.0):
        self.params = SimpleNamespace(values=np.zeros(2, np.float32))
        self.optimizer = SimpleNamespace(learning_rate=learning_rate)
        self.said: list[str] = []
        self.say = self.said.append
        self.upwards = lambda name: None  # no metric of known direction: the callbacks' modes decide


def run(callback, values, monitor="val_loss", stub=None):
    """Feed one monitored value per epoch (the weights hold the epoch number); the epoch it stopped at or None."""
    stub = stub or Stub()
    callback.bind(stub)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        stub.params.values[:] = epoch
        if callback.on_epoch_end(epoch, {monitor: value}):
            return epoch
    return None


def stopping(**settings):
    return C.EarlyStopping(C.EarlyStoppingSettings(type="early_stopping", **settings))


@pytest.mark.parametrize("settings, values, stopped_at", [
    ({}, [1.0, 0.9, 0.95, 0.8], 2),                                    # patience 0: the first epoch without gain
    ({"patience": 2}, [1.0, 1.1, 1.2, 0.9], 2),                        # two epochs without gain
    ({"patience": 2}, [1.0, 1.1, 0.9, 1.0], None),                     # a gain restarts the count
    ({"patience": 1, "min_delta": 0.1}, [1.0, 0.95, 0.85], 1),         # 0.05 is not a gain of 0.1
    ({"patience": 1, "min_delta": 0.1}, [1.0, 0.85, 0.7], None),
    ({"patience": 2, "baseline": 0.5}, [0.8, 0.7, 0.75], 2),           # gains that do not beat the baseline count
    ({"patience": 2}, [0.8, 0.7, 0.75], None),                         # ... which they otherwise do not
    ({"start_from_epoch": 2}, [1.0, 2.0, 3.0, 4.0], 3),                # the first two epochs are not watched
    ({"mode": "max"}, [1.0, 0.9], 1),
], ids=["patience-0", "patience-2", "gain-resets", "min-delta", "min-delta-met", "baseline", "no-baseline",
        "start-from-epoch", "mode-max"])
def test_early_stopping(settings, values, stopped_at):
    assert run(stopping(**settings), values) == stopped_at


def test_early_stopping_auto_mode_maximizes_accuracy():
    assert run(stopping(monitor="val_accuracy"), [0.5, 0.6, 0.55], "val_accuracy") == 2
    assert run(stopping(monitor="val_accuracy"), [0.5, 0.6, 0.7], "val_accuracy") is None
    assert run(stopping(monitor="val_loss"), [0.5, 0.6], "val_loss") == 1


def test_early_stopping_restores_the_best_epochs_weights():
    stub = Stub()
    callback = stopping(patience=2, restore_best_weights=True)
    assert run(callback, [1.0, 0.5, 0.7, 0.6], stub=stub) == 3
    assert np.all(stub.params.values == 3)
    callback.on_train_end()
    assert np.all(stub.params.values == 1)  # the weights at the end of epoch 2, the best
    assert stub.said == ["Epoch 4: early stopping (val_loss has not improved on 0.5 for 2 epoch(s))",
                         "Restoring model weights from the end of the best epoch: 2."]
    # without restore_best_weights the last weights stay
    stub = Stub()
    callback = stopping(patience=2)
    run(callback, [1.0, 0.5, 0.7, 0.6], stub=stub)
    callback.on_train_end()
    assert np.all(stub.params.values == 3)


def plateau(**settings):
    return C.ReduceLROnPlateau(C.ReduceLROnPlateauSettings(type="reduce_lr_on_plateau", **settings))


def learning_rates(callback, values):
    """The learning rate each epoch logged (Keras logs the rate the epoch trained with) and the final rate."""
    stub = Stub(learning_rate=1.0)
    callback.bind(stub)
    callback.on_train_begin()
    logged = []
    for epoch, value in enumerate(values):
        logs = {"val_loss": value}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    return logged, stub.optimizer.learning_rate


@pytest.mark.parametrize("settings, values, logged, final", [
    ({"patience": 2, "factor": 0.5}, [1.0, 1.0, 1.0, 1.0, 1.0], [1, 1, 1, 0.5, 0.5], 0.25),
    ({"patience": 1, "factor": 0.5}, [1.0, 0.9, 0.8, 0.8, 0.7], [1, 1, 1, 1, 0.5], 0.5),
    ({"patience": 1, "factor": 0.5, "min_delta": 0.15}, [1.0, 0.9, 0.8], [1, 1, 0.5], 0.5),
    ({"patience": 1, "factor": 0.5, "cooldown": 2}, [1.0] * 7, [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125], 0.125),
    ({"patience": 1, "factor": 0.1, "min_lr": 0.05}, [1.0] * 4, [1, 1, 0.1, 0.05], 0.05),
], ids=["patience", "gains", "min-delta", "cooldown", "min-lr"])
def test_reduce_lr_on_plateau(settings, values, logged, final):
    got, rate = learning_rates(plateau(**settings), values)
    assert got == pytest.approx(logged) and rate == pytest.approx(final)


def test_optimizers_train_with_the_changed_learning_rate():
    from specc.train.optimizers import SGD, Adam, Optimizer, RMSprop
    for config in (SGD(type="sgd"), Adam(type="adam"), RMSprop(type="rmsprop")):
        steps = []
        for rate in (config.learning_rate, config.learning_rate / 10):
            optimizer = Optimizer(config, 3)
            optimizer.learning_rate = rate
            weights = np.ones(3, np.float32)
            optimizer.step(weights, np.full(3, 0.5, np.float32))
            steps.append(1 - weights)
        assert np.allclose(steps[1], steps[0] / 10, rtol=1e-4), config.type


# -- checkpoints written by model_checkpoint ---------------------------------------------------------------------

def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    spec = digits(tmp_path, "{epochs: 4, callbacks: [{type: model_checkpoint, filepath: 'epoch{epoch:02d}.npz'}, "
                            "{type: model_checkpoint, save_best_only: true, monitor: val_accuracy}, "
                            "{type: model_checkpoint, filepath: last_weights.npz, save_weights_only: true}]}")
    model = specc.load(spec)
    history = model.fit(out=tmp_path / "run")
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("*.npz")) == ["best.npz", "checkpoint.npz", "epoch01.npz",
                                                         "epoch02.npz", "epoch03.npz", "epoch04.npz",
                                                         "last_weights.npz"]
    accuracies = [logs["val_accuracy"] for logs in history]
    best_epoch = max(range(4), key=lambda e: (accuracies[e], -e)) + 1  # the first epoch with the best value
    best = load_checkpoint(run / "best.npz")
    assert best.state.epoch == best_epoch and len(best.state.history) == best_epoch
    same = load_checkpoint(run / f"epoch{best_epoch:02d}.npz")
    assert all(np.array_equal(best.weights[k], same.weights[k]) for k in same.weights)
    assert load_checkpoint(run / "epoch04.npz").state.finished
    # a checkpoint's weights load like a weights file; save_weights_only writes a plain weights file
    final = model.get_weights()
    with np.load(run / "last_weights.npz") as plain:
        assert sorted(plain.files) == sorted(final)
    for source in ("epoch04.npz", "last_weights.npz", "checkpoint.npz"):
        other = specc.load(spec)
        other.load_weights(run / source)
        assert all(np.array_equal(other.get_weights()[k], final[k]) for k in final), source


def test_early_stopping_in_a_run_restores_the_best_weights(tmp_path):
    spec = digits(tmp_path, "{epochs: 30, callbacks: [{type: early_stopping, patience: 2, min_delta: 0.08, "
                            "restore_best_weights: true}]}")
    model = specc.load(spec)
    history = model.fit()
    losses = [logs["val_loss"] for logs in history]
    # val_loss gains by more than 0.08 up to epoch 3, by less after: two epochs later it stops
    assert len(history) == 5, losses
    assert model.stopped["reason"] == "early_stopping"
    reference = specc.load(DIGITS)
    reference.fit(epochs=3)
    restored, best = model.get_weights(), reference.get_weights()
    assert all(np.array_equal(restored[k], best[k]) for k in best)


def test_csv_logger_writes_the_history_with_its_separator(tmp_path):
    spec = digits(tmp_path, "{epochs: 2, callbacks: [{type: csv_logger, filename: log.tsv, separator: \"\\t\"}, "
                            "terminate_on_nan]}")
    specc.load(spec).fit(out=tmp_path / "run")
    lines = (tmp_path / "run" / "log.tsv").read_text().splitlines()
    assert lines[0] == "epoch\tloss\taccuracy\tval_loss\tval_accuracy"
    assert [line.split("\t")[0] for line in lines[1:]] == ["1", "2"]


# -- sample and class weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sample_weights_scale_each_rows_loss(name):
    """Keras: each row's loss times its weight, summed, over the batch size; the gradient scales per row.
    A row's loss is the loss of that row alone, so the weighted loss is checked row by row."""
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.05, 1, size=(6, 3, 4)).astype(np.float32)
    if name == "sparse_categorical_crossentropy":
        true = rng.integers(0, 4, size=(6, 3))
    elif "crossentropy" in name:
        true = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(6, 3))]
    else:
        true = rng.normal(size=pred.shape).astype(np.float32)
    rows = np.array([default_loss(name)(pred[i:i + 1], true[i:i + 1])[0] for i in range(6)])
    assert rows.mean() == pytest.approx(default_loss(name)(pred, true)[0], rel=1e-5)
    w = np.array([0, 1, 2, 0.5, 1, 3], np.float32)
    loss, grad = default_loss(name)(pred, true, w)
    assert loss == pytest.approx(float((rows * w).sum() / 6), rel=1e-5)
    assert np.allclose(grad, default_loss(name)(pred, true)[1] * w[:, None, None], rtol=1e-6, atol=1e-9)


def weighted_digits(tmp_path, weights: np.ndarray, fit: str, **replace) -> Path:
    """Digits with a sample_weight array beside the images and labels."""
    data = np.load(DIGITS_DATA)
    np.savez(tmp_path / "weighted.npz", images=data["images"], labels=data["labels"], w=weights)
    spec = digits(tmp_path, fit, name="weighted",
                  **{"targets: {digit: labels}": "targets: {digit: labels}\n    sample_weight: w"}, **replace)
    spec.write_text(spec.read_text().replace(str(DIGITS_DATA), str(tmp_path / "weighted.npz")))
    return spec


def test_class_weight_is_sample_weight_by_label(tmp_path):
    labels = np.load(DIGITS_DATA)["labels"]
    table = {0: 3.0, 7: 0.25, 9: 2.0}
    by_class = specc.load(digits(tmp_path, "{epochs: 2, class_weight: {0: 3.0, 7: 0.25, 9: 2.0}}"))
    class_history = by_class.fit()
    rows = np.array([table.get(int(label), 1.0) for label in labels], np.float32)
    by_row = specc.load(weighted_digits(tmp_path, rows, "{epochs: 2}"))
    row_history = by_row.fit()
    a, b = by_class.get_weights(), by_row.get_weights()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # class weights count in training only; sample weights count in validation too (as in Keras)
    assert class_history[-1]["loss"] == row_history[-1]["loss"]
    assert class_history[-1]["val_loss"] != row_history[-1]["val_loss"]
    unweighted = specc.load(DIGITS)
    unweighted.fit(epochs=2)
    assert not np.array_equal(unweighted.get_weights()["digit/kernel"], a["digit/kernel"])


def test_sample_weights_scale_the_gradient(tmp_path):
    """Weight 2 on every row is, for plain SGD, a doubled learning rate: the same steps exactly."""
    doubled = specc.load(weighted_digits(tmp_path, np.full(1797, 2.0, np.float32), "{epochs: 2}",
                                         **{"optimizer: adam": "optimizer: {type: sgd, learning_rate: 0.01}"}))
    doubled.fit()
    fast = specc.load(digits(tmp_path, "{epochs: 2}", **{"optimizer: adam": "optimizer: {type: sgd, "
                                                                            "learning_rate: 0.02}"}))
    fast.fit()
    a, b = doubled.get_weights(), fast.get_weights()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_unit_sample_weights_change_nothing(tmp_path):
    ones = specc.load(weighted_digits(tmp_path, np.ones(1797, np.float32), "{epochs: 2}"))
    history = ones.fit()
    plain = specc.load(DIGITS)
    reference = plain.fit(epochs=2)
    a, b = ones.get_weights(), plain.get_weights()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert history[-1]["val_loss"] == pytest.approx(reference[-1]["val_loss"], rel=1e-6)


# -- a loss that turns NaN or infinite ---------------------------------------------------------------------------

DIVERGING = """\
specc: 1
name: diverging
inputs:
  x: {shape: [4]}
layers:
  y: {type: Dense, units: 1, inputs: x}
outputs: [y]
compile:
  optimizer: {type: sgd, learning_rate: 0.5}
  loss: mse
data:
  train: data.npz
fit: {epochs: 50, batch_size: 8, shuffle: true}
"""


def diverging(tmp_path: Path, blowup_row: int | None = None) -> Path:
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32) * 3
    if blowup_row is not None:
        x[blowup_row] = 1e30  # finite, but its squared error is not
    np.savez(tmp_path / "data.npz", x=x, y=x.sum(axis=1))
    (tmp_path / "diverging.yaml").write_text(DIVERGING if blowup_row is None else
                                              DIVERGING.replace("shuffle: true", "shuffle: false"))
    return tmp_path / "diverging.yaml"


def test_nan_stops_before_the_step_and_keeps_the_last_good_weights(tmp_path):
    spec = diverging(tmp_path)
    model = specc.load(spec)
    messages = io.StringIO()
    history = model.fit(progress=Progress(50, 8, stream=io.StringIO(), messages=messages))
    stopped = model.stopped
    assert stopped["reason"] == "nan"
    match = re.fullmatch(r"loss became (nan|inf) at epoch (\d+), batch (\d+); stopped; the last good weights are "
                         r"kept", stopped["message"])
    assert match, stopped["message"]
    epoch, batch = int(match[2]), int(match[3])
    assert epoch > 1 and len(history) == epoch - 1
    assert stopped["message"] + "\n" == messages.getvalue()
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights.values())
    # the same run stopped just before that batch has exactly these weights
    before = StopAfter((epoch - 1) * 8 + batch - 1)
    again = specc.load(spec)
    again.fit(progress=before, stop=before)
    assert again.stopped["reason"] == "interrupted"
    assert all(np.array_equal(again.get_weights()[k], weights[k]) for k in weights)


def test_nan_at_a_known_batch(tmp_path):
    model = specc.load(diverging(tmp_path, blowup_row=20))  # row 20 is in batch 3 (8 rows a batch, in order)
    model.fit()
    assert model.stopped["message"].startswith("loss became inf at epoch 1, batch 3; stopped")


# -- progress -------------------------------------------------------------------------------------------------

def show(progress: Progress, epochs=2, batches=3):
    for epoch in range(epochs):
        progress.epoch_begin(epoch)
        for batch in range(batches):
            progress.batch_end(batch, {"loss": 1.0 / (batch + 1)}, rows=10)
        progress.epoch_end({"loss": 0.5, "val_loss": float("nan")})


def test_progress_one_line_per_epoch_when_not_a_terminal():
    out = io.StringIO()
    show(Progress(2, 3, stream=out, live=False))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert re.fullmatch(r"Epoch 1/2 - \d+\.\d\ds - [\d,]+ samples/s - loss: 0\.5000 - val_loss: nan", lines[0])


def test_progress_live_bar_on_a_terminal():
    out = io.StringIO()
    show(Progress(2, 3, stream=out, live=True), epochs=1)
    text = out.getvalue()
    assert "\r" in text and "[==============================] 3/3 - ETA 0s - " in text
    assert re.search(r"3/3 - ETA \d+s - [\d,]+ samples/s - loss: 0\.3333", text)
    assert text.endswith("val_loss: nan\033[K\n")


def test_progress_json_one_object_per_epoch():
    out = io.StringIO()
    show(Progress(2, 3, stream=out, log_format="json", live=True))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(records[0]) == {"epoch", "epochs", "seconds", "samples_per_second", "loss", "val_loss"}
    assert records[0]["loss"] == 0.5 and records[0]["val_loss"] is None  # NaN is not JSON: null


def test_progress_quiet_shows_nothing_but_what_must_be_said():
    out, messages = io.StringIO(), io.StringIO()
    progress = Progress(2, 3, stream=out, live=True, quiet=True, messages=messages)
    show(progress)
    progress.message("Epoch 2: early stopping")
    progress.message("loss became nan", always=True)
    assert out.getvalue() == "" and messages.getvalue() == "loss became nan\n"


@pytest.mark.parametrize("name", list(C.CALLBACKS))
def test_every_callback_works_from_its_defaults_and_is_tested(name):
    assert isinstance(C.CALLBACKS[name](type=name).make(), C.Callback)
    assert name in Path(__file__).read_text().replace("list(C.CALLBACKS)", ""), f"no test here uses '{name}'"


@pytest.mark.parametrize("name", list(C.CALLBACKS))
def test_callback_arguments_are_keras_arguments(name, keras):
    assert_keras_arguments(C.CALLBACKS[name], keras_class_of(keras.callbacks, name), skip={"type"})
