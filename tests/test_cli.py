"""The `specc` command end to end, in subprocesses: exit codes, messages, artifacts, and never a traceback."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import specc

ROOT = Path(__file__).parents[1]
DIGITS = ROOT / "specs" / "digits.yaml"
DATA = np.load(ROOT / "specs" / "data" / "digits.npz")
SPECC_EXE = Path(sys.executable).with_name("specc")


def run(*args, cwd: Path | None = None, exe: bool = False) -> subprocess.CompletedProcess:
    command = [str(SPECC_EXE)] if exe else [sys.executable, "-m", "specc"]
    result = subprocess.run([*command, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    return result


BAD = """\
specc: 1
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dence, units: 8, inputs: x}
  y: {type: Dense, units: -1, activation: relux, inputs: h}
outputs: [y]
compile: {loss: mse}
"""
BAD_PROBLEMS = [  # (line, column, key path, message part)
    (5, 13, "layers.h.type", "unknown layer type 'Dence' (did you mean 'Dense'?)"),
    (6, 27, "layers.y.units", "greater than 0"),
    (6, 43, "layers.y.activation", "'relux' is not one of"),
]


@pytest.fixture
def bad_spec(tmp_path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


# -- validate -------------------------------------------------------------------------------------------------

def test_validate_good_file():
    result = run("validate", DIGITS)
    assert result.returncode == 0, result.stderr
    assert "1 file(s) valid" in result.stdout
    assert result.stderr == ""


def test_validate_with_the_installed_executable(bad_spec):
    assert SPECC_EXE.exists()
    assert run("validate", DIGITS, exe=True).returncode == 0
    result = run("validate", bad_spec, exe=True)
    assert result.returncode == 1
    assert f"{bad_spec}:5:13: layers.h.type: unknown layer type 'Dence'" in result.stderr


def test_validate_several_files_one_bad(bad_spec):
    result = run("validate", DIGITS, bad_spec, DIGITS)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(bad_spec))]
    assert len(lines) == len(BAD_PROBLEMS), result.stderr
    for line, (row, column, path, part) in zip(lines, BAD_PROBLEMS):
        assert line.startswith(f"{bad_spec}:{row}:{column}: {path}: "), line
        assert part in line
    assert "3 problem(s) in 1 of 3 file(s)" in result.stderr
    assert str(DIGITS) not in result.stderr  # good files are not reported as bad


def test_validate_json_format(bad_spec):
    result = run("validate", "--format", "json", DIGITS, bad_spec)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [(r["file"], r["ok"]) for r in report] == [(str(DIGITS), True), (str(bad_spec), False)]
    assert report[0]["problems"] == []
    problems = report[1]["problems"]
    assert [(p["line"], p["column"], p["path"]) for p in problems] == [p[:3] for p in BAD_PROBLEMS]
    for p, (*_, part) in zip(problems, BAD_PROBLEMS):
        assert p["file"] == str(bad_spec)
        assert part in p["message"]


def test_validate_missing_file(tmp_path):
    result = run("validate", tmp_path / "nope.yaml")
    assert result.returncode == 1
    assert f"{tmp_path / 'nope.yaml'}: no such file" in result.stderr


@pytest.mark.parametrize("args, part", [
    (["validate", "--bogus", str(DIGITS)], "No such option '--bogus'"),
    (["validate"], "Missing argument"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["train", str(DIGITS), "--epochs", "0"], "Invalid value for '--epochs'"),
    (["predict", str(DIGITS), "--data", "x.npz", "-o", "y.npz"], "Missing option '--weights'"),
    (["validate", str(DIGITS), "--format", "xml"], "Invalid value for '--format'"),
], ids=["unknown-option", "missing-argument", "unknown-command", "bad-value", "missing-option", "bad-choice"])
def test_usage_errors_exit_2(args, part):
    result = run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert part in result.stderr
    assert "Usage:" in result.stderr


@pytest.mark.parametrize("command", ["validate", "summary", "render", "train", "predict", "evaluate"])
def test_bad_spec_never_gives_a_traceback(bad_spec, tmp_path, command):
    extra = {"train": ["--out", tmp_path / "run"],
             "predict": ["--weights", "w.npz", "--data", "x.npz", "-o", "p.npz"],
             "evaluate": ["--weights", "w.npz"]}.get(command, [])
    result = run(command, bad_spec, *extra, cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad_spec}:5:13: layers.h.type:" in result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_data_never_gives_a_traceback(tmp_path):
    spec = tmp_path / "digits.yaml"
    shutil.copy(DIGITS, spec)
    result = run("train", spec, "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{spec}:24:5: data.train: data/digits.npz: no such file" in result.stderr
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "digits.npz", images=DATA["images"][:, :4], labels=DATA["labels"])
    result = run("train", spec, "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{spec}:25:22: data.train.inputs.images: data/digits.npz: array 'images' has shape (1797, 4, 8)" \
        in result.stderr
    assert not (tmp_path / "run").exists()


# -- summary, schema, render ------------------------------------------------------------------------------------

def test_summary():
    result = run("summary", DIGITS)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Total params: 8,970" in out
    assert "Trainable params: 8,970" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if "(" in line and ")" in line}
    assert rows["images"][1] == "(Input)"
    assert rows["scaled"][1:5] == ["(Dense)", "(None,", "64)", "4,160"]
    assert rows["digit"][1:5] == ["(Dense)", "(None,", "10)", "650"]
    assert rows["pixels"][1:5] == ["(Flatten)", "(None,", "64)", "0"]


def test_schema():
    result = run("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "layers" in schema["properties"]
    assert "specc" in schema["required"]
    assert schema["additionalProperties"] is False


def test_render_fills_defaults_and_validates(tmp_path):
    result = run("render", DIGITS)
    assert result.returncode == 0, result.stderr
    rendered = result.stdout
    assert "use_bias: true" in rendered
    assert "batch_size: 32" in rendered
    assert "learning_rate: 0.001" in rendered  # from `optimizer: adam`
    assert "use_bias" not in DIGITS.read_text()
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    assert run("validate", path).returncode == 0
    again = run("render", path)
    assert again.stdout == rendered  # rendering is a fixed point
    assert specc.load(path).count_params() == 8970


def test_read_only_commands_never_import_numba(tmp_path, trained):
    code = """\
import sys
from specc.cli import cli
try:
    cli.main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("numba imported:", "numba" in sys.modules)
"""
    for args in (["validate", DIGITS], ["summary", DIGITS], ["schema"], ["render", DIGITS]):
        result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                                cwd=tmp_path, timeout=120)
        assert result.stdout.splitlines()[-1] == "numba imported: False", (args, result.stdout, result.stderr)
    # the control: a command that computes does import it, so the check above can tell
    result = subprocess.run([sys.executable, "-c", code, "predict", DIGITS, "--weights", trained / "weights.npz",
                             "--data", trained / "x.npz", "-o", tmp_path / "p.npz"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.stdout.splitlines()[-1] == "numba imported: True", (result.stdout, result.stderr)


# -- train, predict, evaluate -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 2-epoch run of the digits spec (with the installed executable), and 25 rows to predict on."""
    out = tmp_path_factory.mktemp("run")
    result = run("train", DIGITS, "--epochs", "2", "--out", out, exe=True, cwd=out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Training digits: 1438 rows, validating on 359, 2 epoch(s) of 45 batch(es)",
        f"Saved {out / 'weights.npz'}, history.csv, checkpoint.npz and spec.yaml"]
    # not a terminal: no bar, a line per epoch
    assert [line.split(" - ")[0] for line in result.stdout.splitlines()] == ["Epoch 1/2", "Epoch 2/2"]
    np.savez(out / "x.npz", images=DATA["images"][:25])
    return out


def test_train_writes_weights(trained):
    with np.load(trained / "weights.npz", allow_pickle=False) as weights:
        shapes = {k: weights[k].shape for k in weights.files}
        assert all(weights[k].dtype == np.float32 for k in weights.files)
    assert shapes == {"scaled/kernel": (64, 64), "scaled/bias": (64,), "hidden/kernel": (64, 64),
                      "hidden/bias": (64,), "digit/kernel": (64, 10), "digit/bias": (10,)}


def test_train_writes_history(trained):
    with open(trained / "history.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert [r[0] for r in rows[1:]] == ["1", "2"]
    values = np.array(rows[1:], dtype=float)
    assert np.all(values[:, 1:] >= 0) and np.all(values[:, [2, 4]] <= 1)
    assert values[1, 1] < values[0, 1]  # training loss went down


def test_train_writes_rendered_spec(trained):
    text = (trained / "spec.yaml").read_text()
    assert "use_bias: true" in text and "epochs: 30" in text
    assert specc.load(trained / "spec.yaml").count_params() == 8970


def test_predict(trained, tmp_path):
    out = tmp_path / "preds.npz"
    result = run("predict", DIGITS, "--weights", trained / "weights.npz", "--data", trained / "x.npz", "-o", out)
    assert result.returncode == 0, result.stderr
    with np.load(out, allow_pickle=False) as preds:
        assert preds.files == ["digit"]
        digit = preds["digit"]
    assert digit.shape == (25, 10)
    assert np.allclose(digit.sum(axis=1), 1, atol=1e-5)
    assert np.all(digit >= 0)
    assert np.mean(digit.argmax(axis=1) == DATA["labels"][:25]) > 0.6  # two epochs already learn something


def test_evaluate(trained):
    result = run("evaluate", DIGITS, "--weights", trained / "weights.npz")
    assert result.returncode == 0, result.stderr
    printed = dict(line.split(": ") for line in result.stdout.splitlines())
    assert set(printed) == {"loss", "accuracy"}
    with open(trained / "history.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    # evaluate defaults to the spec's validation data: the same numbers as the last epoch's val_*
    assert abs(float(printed["loss"]) - float(last["val_loss"])) < 1e-4
    assert abs(float(printed["accuracy"]) - float(last["val_accuracy"])) < 1e-4


def test_evaluate_on_given_data(trained, tmp_path):
    data = tmp_path / "xy.npz"
    np.savez(data, images=DATA["images"][:100], labels=DATA["labels"][:100])
    result = run("evaluate", DIGITS, "--weights", trained / "weights.npz", "--data", data)
    assert result.returncode == 0, result.stderr
    assert "loss: " in result.stdout and "accuracy: " in result.stdout


@pytest.mark.parametrize("command", ["predict", "evaluate", "train"])
def test_wrong_weights_file(trained, tmp_path, command):
    extra = {"predict": ["--data", trained / "x.npz", "-o", tmp_path / "p.npz"],
             "train": ["--out", tmp_path / "run"]}.get(command, [])
    wrong = trained / "x.npz"  # an .npz, but of data, not weights
    result = run(command, DIGITS, "--weights", wrong, *extra)
    assert result.returncode == 1
    assert (f"{wrong}: weights file holds none of this model's weights (it has images): is it another spec's? "
            "This model's are scaled/kernel, scaled/bias, hidden/kernel, hidden/bias, digit/kernel and 1 more"
            in result.stderr)
    assert not (tmp_path / "p.npz").exists() and not (tmp_path / "run").exists()


def test_weights_of_the_wrong_shape(trained, tmp_path):
    with np.load(trained / "weights.npz") as w:
        arrays = dict(w)
    arrays["hidden/kernel"] = arrays["hidden/kernel"][:, :32]
    np.savez(tmp_path / "w.npz", **arrays)
    result = run("evaluate", DIGITS, "--weights", tmp_path / "w.npz")
    assert result.returncode == 1
    assert "array 'hidden/kernel' has shape (64, 32), the model needs (64, 64)" in result.stderr


@pytest.mark.parametrize("content", [None, b"not an npz at all"], ids=["missing", "garbage"])
def test_unreadable_weights_file(tmp_path, content):
    weights = tmp_path / "w.npz"
    if content is not None:
        weights.write_bytes(content)
    result = run("evaluate", DIGITS, "--weights", weights)
    assert result.returncode == 1
    assert str(weights) in result.stderr
    assert ("cannot read weights: no such file" if content is None
            else "cannot read weights: is not an .npz file") in result.stderr


def test_weights_file_with_a_renamed_and_a_misshapen_array(trained, tmp_path):
    arrays = dict(np.load(trained / "weights.npz"))
    arrays["hidden/kernel_old"] = arrays.pop("hidden/kernel")
    arrays["digit/bias"] = arrays["digit/bias"][:3]
    edited = tmp_path / "edited.npz"
    np.savez(edited, **arrays)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(DIGITS).load_weights(edited)
    assert [p.message for p in caught.value.problems] == [
        "weights file has no array for hidden/kernel",
        "weights file has arrays the model does not use: hidden/kernel_old",
        "weights file array 'digit/bias' has shape (3,), the model needs (10,)"]


def test_quiet_training_says_nothing(tmp_path):
    result = run("train", DIGITS, "--epochs", "1", "--out", tmp_path / "run", "--quiet")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "run" / "weights.npz").exists()
