"""A run folder as a hostile or unlucky user meets it: two runs at once, --overwrite that fails, a stop between
the last checkpoint and the weights, folders that take no files, a full disk, a closed pipe. Each ends in a
clear message naming the place, exit 1 (never an internal error), and the files already written intact."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specc.io.npz import read_npz
from specc.train.run import RunFolder
from support import digits, run

QUICK = "{epochs: 1, batch_size: 256}"


def trained(tmp_path: Path, fit: str = QUICK) -> tuple[Path, Path]:
    spec = digits(tmp_path, fit)
    folder = tmp_path / "run"
    assert run("train", spec, "--out", folder, "--quiet").returncode == 0
    return spec, folder


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def assert_user_error(result, *parts):
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr
    for part in parts:
        assert part in result.stderr, result.stderr


def test_a_second_run_in_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    spec = digits(tmp_path, QUICK)
    folder = tmp_path / "run"
    folder.mkdir()
    with RunFolder(folder).locked():  # as a `specc train` running there holds it
        result = run("train", spec, "--out", folder, "--quiet")
        assert_user_error(result, f"{folder}: another `specc train` is running in this folder")
        assert list(folder.iterdir()) == []
    assert run("train", spec, "--out", folder, "--quiet").returncode == 0  # released with the process


def test_overwrite_keeps_the_old_run_until_the_new_one_has_weights(tmp_path, monkeypatch):
    spec, folder = trained(tmp_path)
    before = contents(folder)
    from specc.train import loop

    def out_of_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "checkpoint.npz"))
    monkeypatch.setattr(loop.Trainer, "write_run_files", out_of_room)
    result = run("train", spec, "--out", folder, "--quiet", "--overwrite")
    assert_user_error(result, f"{folder / 'checkpoint.npz'}: cannot write: No space left on device",
                      "the run had written no checkpoint yet")
    assert contents(folder) == before and not (folder / ".overwritten").exists()
    monkeypatch.undo()
    assert run("train", spec, "--out", folder, "--quiet", "--overwrite").returncode == 0
    assert not (folder / ".overwritten").exists()
    assert read_npz(folder / "weights.npz").keys() == read_npz(tmp_path / "run" / "weights.npz").keys()


def test_an_interrupted_overwrite_keeps_the_old_weights_aside_until_resumed(tmp_path, monkeypatch):
    spec, folder = trained(tmp_path, "{epochs: 2, batch_size: 256}")
    old_weights = (folder / "weights.npz").read_bytes()
    from specc.train import run as run_module
    monkeypatch.setattr(run_module.StopOnSignal, "__call__", lambda self: True)  # a Ctrl-C after the first batch
    result = run("train", spec, "--out", folder, "--quiet", "--overwrite")
    assert result.returncode == 130
    assert not (folder / "weights.npz").exists()
    assert (folder / ".overwritten" / "weights.npz").read_bytes() == old_weights
    monkeypatch.undo()
    assert run("train", "--resume", folder, "--quiet").returncode == 0
    assert (folder / "weights.npz").exists() and not (folder / ".overwritten").exists()


def test_resume_completes_a_run_stopped_before_its_weights_were_written(tmp_path):
    _, folder = trained(tmp_path)
    weights = read_npz(folder / "weights.npz")
    (folder / "weights.npz").unlink()
    result = run("train", "--resume", folder)
    assert result.returncode == 0, result.stderr
    assert "wrote it from" in result.stderr
    again = read_npz(folder / "weights.npz")
    assert all(np.array_equal(weights[k], again[k]) for k in weights)


@pytest.mark.parametrize("kind", ["file", "dangling-symlink", "looping-symlink", "proc"])
def test_a_folder_that_takes_no_files_is_refused_before_training(tmp_path, kind):
    spec = digits(tmp_path, QUICK)
    out = {"file": Path(os.devnull), "proc": Path("/proc/self/run")}.get(kind, tmp_path / "out")
    if kind == "dangling-symlink":
        out.symlink_to(tmp_path / "nowhere" / "deeper")
        (tmp_path / "nowhere").write_text("a file, so the link's folder cannot be made")
    elif kind == "looping-symlink":
        out.symlink_to(out)
    elif not out.parent.exists():
        pytest.skip(f"no {out.parent} here")
    result = run("train", spec, "--out", out, "--quiet")
    assert_user_error(result, f"{out}: cannot write the run's files here")


def mount_tmpfs(folder: Path, options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    folder.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def mount(name: str, options: str) -> Path:
        folder = tmp_path / name
        if not mount_tmpfs(folder, options):
            pytest.skip("mounting a small tmpfs needs root and mount(8)")
        mounted.append(folder)
        return folder
    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_full_disk_names_the_file_and_what_was_kept(tmp_path, tmpfs):
    spec = digits(tmp_path, "{epochs: 3, batch_size: 256}")
    folder = tmpfs("small", "size=48k")
    result = run("train", spec, "--out", folder / "run", "--quiet")
    assert_user_error(result, "cannot write: No space left on device")
    assert "specc train --resume" in result.stderr or "no checkpoint yet" in result.stderr
    assert not [p for p in (folder / "run").iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_run_is_refused_before_an_epoch(tmp_path, tmpfs):
    spec = digits(tmp_path, "{epochs: 2, batch_size: 256}")
    folder = tmpfs("ro", "size=4m")
    from specc.train import run as run_module
    assert run("train", spec, "--out", folder / "run", "--quiet", "--epochs", "1").returncode == 0
    (folder / "run" / "weights.npz").unlink()  # so that it is not finished
    before = contents(folder / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    result = run("train", "--resume", folder / "run", "--epochs", "2", "--quiet")
    assert_user_error(result, "cannot write the run's files here")
    assert contents(folder / "run") == before
    assert run_module


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    spec = digits(tmp_path, "{epochs: 50, batch_size: 512}")
    process = subprocess.Popen([sys.executable, "-m", "specc", "train", str(spec), "--out", str(tmp_path / "run"),
                                "--log-format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert b'"epoch": 1' in first
    assert process.returncode == 141, err
    assert b"Traceback" not in err and b"internal error" not in err


def test_degenerate_validation_splits_are_refused(tmp_path):
    spec = digits(tmp_path, QUICK, **{"validation_split: 0.2": "validation_split: 0.99999"})
    result = run("train", spec, "--out", tmp_path / "run", "--quiet")
    assert_user_error(result, "data.validation_split: validation_split 0.99999 of 1797 row(s) leaves no training rows")


def test_evaluate_without_validation_data_says_it_uses_the_training_data(tmp_path):
    spec, folder = trained(tmp_path)
    no_split = digits(tmp_path, QUICK, name="whole", **{"  validation_split: 0.2\n": ""})
    result = run("evaluate", no_split, "--weights", folder / "weights.npz")
    assert result.returncode == 0
    assert "no validation data: evaluating on its training data" in result.stderr
    assert "loss:" in result.stdout


def test_an_infinite_learning_rate_is_refused(tmp_path):
    spec = digits(tmp_path, QUICK, **{"optimizer: adam": "optimizer: {type: adam, learning_rate: .inf}"})
    result = run("validate", spec)
    assert_user_error(result, "compile.optimizer.learning_rate: input should be a finite number")


def test_the_command_loads_nothing_before_it_can_answer_ctrl_c():
    """The `specc` entry point imports numpy, pydantic and click inside the code that turns Ctrl-C into
    "Interrupted." and exit 130, so a Ctrl-C while the command is still loading shows no traceback."""
    probe = ("import sys, specc.__main__; heavy = {'numpy', 'pydantic', 'click', 'yaml'} & set(sys.modules); "
             "print(sorted(heavy))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_completing_a_run_restores_the_best_weights_as_its_end_would(tmp_path):
    # "best" is the highest loss, which training leaves behind after its first epoch: not the last weights
    fit = ("{epochs: 4, batch_size: 128, callbacks: [{type: early_stopping, monitor: loss, mode: max, patience: 10, "
           "restore_best_weights: true}]}")
    spec = digits(tmp_path, fit)
    folder = tmp_path / "run"
    assert run("train", spec, "--out", folder, "--quiet").returncode == 0
    final = read_npz(folder / "weights.npz")
    last = read_npz(folder / "checkpoint.npz")
    assert any(not np.array_equal(final[k], last[f"weights/{k}"]) for k in final)  # the best epoch was not the last
    (folder / "weights.npz").unlink()
    assert run("train", "--resume", folder, "--quiet").returncode == 0
    again = read_npz(folder / "weights.npz")
    assert all(np.array_equal(final[k], again[k]) for k in final)
