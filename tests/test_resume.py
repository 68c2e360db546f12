"""Stopping and resuming: a run stopped anywhere (a stop request, Ctrl-C, SIGTERM, kill -9) and resumed ends
with exactly the weights, optimizer state and history of a run that never stopped; what is on disk is always
a whole file; a run folder is never trained over by accident."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import specc
import support
from specc.io.npz import read_npz
from specc.io.weights import write_atomically
from specc.train.checkpoint import load_checkpoint
from specc.train.run import StopOnSignal
from support import DIGITS, StopAfter

# adam, a learning rate that halves on plateaus, early stopping that keeps the best weights, a best checkpoint:
# every piece of state a resumed run must carry over
EVERYTHING = ("{epochs: 8, batch_size: 32, shuffle: true, callbacks: ["
              "{type: reduce_lr_on_plateau, monitor: val_accuracy, patience: 1, factor: 0.5}, "
              "{type: early_stopping, monitor: val_loss, patience: 4, min_delta: 0.02, restore_best_weights: true}, "
              "{type: model_checkpoint, filepath: best.npz, save_best_only: true}]}")


def digits(tmp_path: Path, fit: str = EVERYTHING, name: str = "digits", **replace) -> Path:
    return support.digits(tmp_path, fit, name, **replace)


def same_weights(a: dict, b: dict) -> bool:
    assert sorted(a) == sorted(b)
    return all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The EVERYTHING run, start to finish, without a stop."""
    folder = tmp_path_factory.mktemp("whole")
    model = specc.load(digits(folder))
    history = model.fit(out=folder / "run")
    rates = {logs["learning_rate"] for logs in history}
    assert len(rates) > 1, "the learning rate must change during the run, or resuming it proves less"
    return model, history, folder / "run"


def test_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path, uninterrupted):
    whole, whole_history, whole_run = uninterrupted
    spec = digits(tmp_path)
    run = tmp_path / "run"
    # stopped mid-epoch, at the last batch of an epoch, and at an epoch's end (after its validation)
    for stop in (StopAfter(batches=60), StopAfter(batches=45), StopAfter(epochs=1), StopAfter(batches=100)):
        model = specc.load(spec)
        model.fit(out=run, resume=run if (run / "checkpoint.npz").exists() else None, progress=stop, stop=stop)
        assert model.stopped["reason"] == "interrupted", model.stopped
    state = load_checkpoint(run / "checkpoint.npz").state
    assert (state.epoch, state.step) == (5, 10)  # 60 + 45 + 45 + 100 batches at 45 a epoch: epoch 6, batch 10
    final = specc.load(spec)
    history = final.fit(resume=run)
    assert final.stopped == whole.stopped
    assert history == whole_history
    assert same_weights(final.get_weights(), whole.get_weights())
    assert final.optimizer.iterations == whole.optimizer.iterations
    assert final.optimizer.learning_rate == whole.optimizer.learning_rate
    for slot in ("m", "v"):
        assert np.array_equal(final.optimizer.state[slot], whole.optimizer.state[slot])
    # the best checkpoint the callbacks wrote is the same file's content too
    ours, theirs = load_checkpoint(run / "best.npz"), load_checkpoint(whole_run / "best.npz")
    assert ours.state.epoch == theirs.state.epoch
    assert same_weights(ours.weights, theirs.weights)


def test_resume_refuses_another_run(tmp_path):
    spec = digits(tmp_path, "{epochs: 3}")
    run = tmp_path / "run"
    stop = StopAfter(batches=10)
    specc.load(spec).fit(out=run, progress=stop, stop=stop)
    changed = digits(tmp_path, "{epochs: 3}", name="changed",
                     **{"optimizer: adam": "optimizer: {type: adam, learning_rate: 0.01}"})
    with pytest.raises(specc.SpecError) as caught:
        specc.load(changed).fit(resume=run)
    (problem,) = caught.value.problems
    assert problem.file == str(run / "checkpoint.npz")
    assert "the run was started from another spec (it differs in compile.optimizer.learning_rate)" in problem.message
    with pytest.raises(specc.SpecError, match="the run trains with batch size 32; resuming it with 16"):
        specc.load(spec).fit(resume=run, batch_size=16)
    train, validation = specc.load(spec).spec_data()
    with pytest.raises(specc.SpecError, match="the run trained on 1438 rows; the data now has 1000"):
        specc.load(spec).fit(resume=run, data=(train.take(slice(0, 1000)), validation))
    edited = train.take(slice(None))
    edited.inputs["images"] = edited.inputs["images"].copy()
    edited.inputs["images"][-1] += 1  # the same rows, one value changed
    with pytest.raises(specc.SpecError, match="the run's training data has changed since it started"):
        specc.load(spec).fit(resume=run, data=(edited, validation))
    # more epochs is the same run, trained further
    longer = digits(tmp_path, "{epochs: 5}", name="longer")
    assert len(specc.load(longer).fit(resume=run)) == 5


# -- signals ----------------------------------------------------------------------------------------------------

def specc_command(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "specc", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_and_resume_finishes_the_run(tmp_path, signum):
    run = tmp_path / "run"
    process = specc_command("train", DIGITS, "--epochs", 100000, "--out", run, cwd=tmp_path)
    first = process.stdout.readline()  # not a terminal: one line per epoch
    assert first.startswith("Epoch      1/100000 - "), first
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert f"{signal.Signals(signum).name}: stopping after this batch and saving a checkpoint" in err
    assert f"Resume with: specc train --resume {run}" in err
    assert not (run / "weights.npz").exists()  # an interrupted run has no final weights yet
    state = load_checkpoint(run / "checkpoint.npz").state
    assert not state.finished and state.epoch >= 1
    epochs = state.epoch + 2
    resumed = subprocess.run([sys.executable, "-m", "specc", "train", "--resume", run, "--epochs", str(epochs)],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming digits from {run / 'checkpoint.npz'} (at " in resumed.stderr
    whole = specc.load(DIGITS)
    whole.fit(epochs=epochs)
    with np.load(run / "weights.npz") as weights:
        assert same_weights(dict(weights), whole.get_weights())
    assert len((run / "history.csv").read_text().splitlines()) == epochs + 1


def test_first_signal_asks_to_stop_second_stops_at_once():
    seen = []
    with StopOnSignal(seen.append) as stop:
        assert not stop()
        signal.raise_signal(signal.SIGINT)
        assert stop() and seen == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    np.savez(path, a=np.arange(3))
    before = path.read_bytes()

    def half_then_interrupted(f):
        f.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # a second Ctrl-C in the middle of writing
    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, half_then_interrupted)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


# -- kill -9 at random moments ------------------------------------------------------------------------------------

WIDE = """\
specc: 1
name: wide
inputs:
  x: {shape: [256]}
layers:
  h1: {type: Dense, units: 512, activation: relu, inputs: x}
  h2: {type: Dense, units: 512, activation: relu, inputs: h1}
  y: {type: Dense, units: 1, inputs: h2}
outputs: [y]
compile: {optimizer: adam, loss: mse}
data:
  train: wide.npz
fit:
  epochs: 100000
  callbacks: [{type: model_checkpoint, filepath: best.npz, save_best_only: true, monitor: loss}]
"""


def test_kill_9_at_random_moments_leaves_whole_files_and_the_run_resumes(tmp_path):
    """A wide model, two batches an epoch: most of the time goes into writing its 5 MB checkpoint after every
    epoch, so a kill lands in the middle of a write more often than not."""
    x = np.random.default_rng(0).normal(size=(64, 256)).astype(np.float32)
    np.savez(tmp_path / "wide.npz", x=x, y=x[:, :3].sum(axis=1))
    spec = tmp_path / "wide.yaml"
    spec.write_text(WIDE)
    run = tmp_path / "run"
    moments = random.Random(1)
    for attempt in range(3):
        args = ["train", spec, "--out", run, "--quiet"] if attempt == 0 else ["train", "--resume", run, "--quiet"]
        process = subprocess.Popen([sys.executable, "-m", "specc", *map(str, args)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, cwd=tmp_path)
        epoch_before = load_checkpoint(run / "checkpoint.npz").state.epoch if attempt else 0
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.npz").exists() or (
                attempt and load_checkpoint(run / "checkpoint.npz").state.epoch == epoch_before):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(moments.uniform(0, 0.3))
        process.kill()
        process.wait()
        process.stderr.close()
        results = [p for p in run.iterdir() if not p.name.endswith(".tmp")]
        names = {p.name for p in results}  # history.csv follows the first checkpoint: a kill may come between
        assert {"best.npz", "checkpoint.npz", "spec.yaml"} <= names <= {"best.npz", "checkpoint.npz", "history.csv",
                                                                         "spec.yaml"}
        for path in results:
            if path.suffix == ".npz":
                arrays = read_npz(path)  # every array, completely
                assert "weights/h1/kernel" in arrays and arrays["weights/h1/kernel"].shape == (256, 512)
                load_checkpoint(path)
    state = load_checkpoint(run / "checkpoint.npz").state
    epochs = state.epoch + 2
    finished = subprocess.run([sys.executable, "-m", "specc", "train", "--resume", run, "--epochs", str(epochs),
                               "--quiet"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # leftovers are cleared by the next run
    whole = specc.load(spec)
    whole.fit(epochs=epochs, out=tmp_path / "whole")
    with np.load(run / "weights.npz") as weights:
        assert same_weights(dict(weights), whole.get_weights())


# -- the run folder ---------------------------------------------------------------------------------------------

def command(capsys, *args) -> tuple[int, str, str]:
    """The specc command, in this process."""
    from specc.cli import main
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return exit_.value.code, out, err


def test_a_finished_run_is_not_overwritten_without_overwrite(tmp_path, capsys):
    spec = digits(tmp_path, "{epochs: 1}")
    run = tmp_path / "run"
    assert command(capsys, "train", spec, "--out", run, "--quiet")[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, _, err = command(capsys, "train", spec, "--out", run, "--epochs", 2, "--quiet")
    assert code == 1
    assert f"{run}: already holds a run (checkpoint.npz, weights.npz, history.csv); pass --overwrite" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    code, _, err = command(capsys, "train", spec, "--out", run, "--epochs", 2, "--quiet", "--overwrite")
    assert code == 0, err
    assert len((run / "history.csv").read_text().splitlines()) == 3


def test_an_unfinished_run_points_at_resume(tmp_path, capsys):
    spec = digits(tmp_path, "{epochs: 2}")
    run = tmp_path / "run"
    stop = StopAfter(batches=10)
    specc.load(spec).fit(out=run, progress=stop, stop=stop)
    code, _, err = command(capsys, "train", spec, "--out", run)
    assert code == 1
    assert (f"{run}: holds an unfinished run (stopped at batch 10 of epoch 1 (of 2 epochs)); continue it with "
            f"`specc train --resume {run}`, or pass --overwrite to start over") in err
    # the spec comes from the run; a temporary file a killed write left is cleared
    (run / ".checkpoint.npz.abcd1234.tmp").write_bytes(b"PK half")
    code, out, err = command(capsys, "train", "--resume", run, "--log-format", "json")
    assert code == 0, err
    assert [json.loads(line)["epoch"] for line in out.splitlines()] == [1, 2]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.npz", "history.csv", "spec.yaml", "weights.npz"]
    code, _, err = command(capsys, "train", "--resume", run)
    assert code == 1
    assert "the run is finished (2 of 2 epoch(s) done); nothing to resume; pass --epochs N" in err


@pytest.mark.parametrize("args, code, part", [
    (["--weights", "w.npz"], 2, "--weights cannot be used with --resume"),
    (["--overwrite"], 2, "--overwrite cannot be used with --resume"),
    (["--out", "elsewhere"], 2, "--resume DIR continues the run in DIR"),
], ids=["weights", "overwrite", "out"])
def test_resume_usage_errors(tmp_path, capsys, args, code, part):
    got, _, err = command(capsys, "train", "--resume", tmp_path, *args)
    assert got == code and part in err


def test_resume_without_a_checkpoint(tmp_path, capsys):
    code, _, err = command(capsys, "train", "--resume", tmp_path)
    assert code == 1
    assert f"{tmp_path / 'checkpoint.npz'}: cannot read checkpoint: no such file" in err
    code, _, err = command(capsys, "train")
    assert code == 2 and "Missing argument 'SPEC' (or --resume DIR to continue a run)" in err


def test_nan_in_the_cli_keeps_the_last_good_weights(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    x[20] = 1e30
    np.savez(tmp_path / "data.npz", x=x, y=x.sum(axis=1))
    spec = tmp_path / "blowup.yaml"
    spec.write_text("specc: 1\ninputs: {x: {shape: [4]}}\nlayers: {y: {type: Dense, units: 1, inputs: x}}\n"
                    "outputs: [y]\ncompile: {loss: mse}\ndata: {train: data.npz}\n"
                    "fit: {epochs: 3, batch_size: 8, shuffle: false}\n")
    code, _, err = command(capsys, "train", spec, "--out", tmp_path / "run", "--quiet")
    assert code == 1
    assert "loss became inf at epoch 1, batch 3; stopped; the last good weights are kept" in err
    assert f"Saved the last good weights to {tmp_path / 'run' / 'weights.npz'}" in err
    first_two = specc.load(spec)
    stop = StopAfter(batches=2)
    first_two.fit(progress=stop, stop=stop)
    with np.load(tmp_path / "run" / "weights.npz") as weights:
        assert same_weights(dict(weights), first_two.get_weights())


@pytest.mark.parametrize("edit, message", [
    (lambda callbacks: callbacks.__setitem__(1, {}),
     "damaged state of callback 1 (early_stopping): it needs the fields"),
    (lambda callbacks: callbacks[0].__setitem__("wait", "x"),
     "damaged state of callback 0 (reduce_lr_on_plateau): 'wait' is 'x', not a number"),
    (lambda callbacks: callbacks.pop(), "holds the state of 2 callback(s); the spec has 3"),
], ids=["missing-fields", "text-for-a-number", "one-missing"])
def test_a_hand_edited_callback_state_is_refused_naming_the_checkpoint(tmp_path, edit, message):
    from specc.io.weights import save_arrays
    spec = digits(tmp_path)
    run = tmp_path / "run"
    stop = StopAfter(batches=50)
    specc.load(spec).fit(out=run, progress=stop, stop=stop)
    arrays = read_npz(run / "checkpoint.npz")
    state = json.loads(str(arrays["state"]))
    edit(state["callbacks"])
    arrays["state"] = np.array(json.dumps(state))
    save_arrays(run / "checkpoint.npz", arrays)
    with pytest.raises(specc.SpecError) as caught:
        specc.load(spec).fit(resume=run)
    (problem,) = caught.value.problems
    assert problem.file == str(run / "checkpoint.npz") and message in problem.message, str(problem)
