"""Learning-rate schedules: every schedule's values against keras.optimizers.schedules at many steps (around
boundaries, through warm-up and restarts); a run logs the rate it reached each epoch; a resumed run follows its
schedule exactly; the spec's refusals."""
import math

import numpy as np
import pytest

import specc
import support
from specc.train.checkpoint import load_checkpoint
from specc.train.optimizers import ACCUMULATOR
from specc.train.schedules import SCHEDULES
from support import StopAfter, assert_keras_arguments, assert_same_names, run

STEPS = np.arange(0, 240)
TOLERANCE = dict(rtol=1e-5, atol=1e-8)  # Keras evaluates in float32 (1 + cos near its end cancels), specc in float64

CASES = [
    {"type": "ExponentialDecay", "initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.9},
    {"type": "ExponentialDecay", "initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5,
     "staircase": True},
    {"type": "InverseTimeDecay", "initial_learning_rate": 0.2, "decay_steps": 5, "decay_rate": 0.3},
    {"type": "InverseTimeDecay", "initial_learning_rate": 0.2, "decay_steps": 5, "decay_rate": 0.3,
     "staircase": True},
    {"type": "PiecewiseConstantDecay", "boundaries": [10, 30, 31], "values": [1.0, 0.5, 0.25, 0.1]},
    {"type": "PiecewiseConstantDecay", "boundaries": [0], "values": [1.0, 0.5]},
    {"type": "PolynomialDecay", "initial_learning_rate": 0.1, "decay_steps": 50},
    {"type": "PolynomialDecay", "initial_learning_rate": 0.1, "decay_steps": 30, "end_learning_rate": 0.01,
     "power": 2.0, "cycle": True},
    {"type": "PolynomialDecay", "initial_learning_rate": 0.1, "decay_steps": 30, "power": 0.5},
    {"type": "CosineDecay", "initial_learning_rate": 0.1, "decay_steps": 100},
    {"type": "CosineDecay", "initial_learning_rate": 0.1, "decay_steps": 100, "alpha": 0.2},
    {"type": "CosineDecay", "initial_learning_rate": 0.0, "decay_steps": 100, "warmup_target": 0.5,
     "warmup_steps": 20, "alpha": 0.1},
    {"type": "CosineDecay", "initial_learning_rate": 0.1, "decay_steps": 100, "warmup_steps": 20},  # no target
    {"type": "CosineDecayRestarts", "initial_learning_rate": 0.1, "first_decay_steps": 10},
    {"type": "CosineDecayRestarts", "initial_learning_rate": 0.1, "first_decay_steps": 12, "t_mul": 1.0,
     "m_mul": 0.8},
    {"type": "CosineDecayRestarts", "initial_learning_rate": 0.1, "first_decay_steps": 8, "t_mul": 1.5,
     "m_mul": 0.5, "alpha": 0.1},
]


def case_id(case: dict) -> str:
    shown = (f"{k}={v}" for k, v in case.items() if k not in ("type", "initial_learning_rate"))
    return "-".join([case["type"], *shown])


def keras_schedule(keras, case: dict):
    return getattr(keras.optimizers.schedules, case["type"])(**{k: v for k, v in case.items() if k != "type"})


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_keras(case, keras):
    ours = np.array([SCHEDULES[case["type"]].model_validate(case)(int(step)) for step in STEPS])
    schedule = keras_schedule(keras, case)
    # one vectorized call over every step rather than one eager call (or a compiled function) per step; the
    # compiled function may divide by a constant as a product with its float32 reciprocal, which can round a
    # whole quotient (step 90 of 30-step cycles) past it: steps that differ are asked again one by one, eagerly
    theirs = keras.ops.convert_to_numpy(keras.ops.vectorized_map(schedule, STEPS))
    again = ~np.isclose(ours, theirs, **TOLERANCE)
    assert again.sum() <= 5, f"steps {STEPS[again]}"
    theirs[again] = [float(schedule(int(step))) for step in STEPS[again]]
    np.testing.assert_allclose(ours, theirs, **TOLERANCE)


def test_every_schedule_is_checked_against_keras():
    assert_same_names(SCHEDULES, {case["type"] for case in CASES}, "schedules (CASES)")


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_arguments_are_keras_arguments(name, keras):
    assert_keras_arguments(SCHEDULES[name], getattr(keras.optimizers.schedules, name), skip={"type"})


def test_boundaries_count_steps_from_zero():
    """Keras: the first value while step <= boundary, the optimizer's first step being step 0."""
    schedule = SCHEDULES["PiecewiseConstantDecay"].model_validate(
        {"type": "PiecewiseConstantDecay", "boundaries": [2, 4], "values": [1.0, 0.5, 0.1]})
    assert [schedule(step) for step in range(6)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.1]


# -- in a run ------------------------------------------------------------------------------------------------

BATCHES = 45  # of the digits spec's training rows in batches of 32
SCHEDULED = "{type: adam, learning_rate: {type: CosineDecayRestarts, initial_learning_rate: 0.01, " \
            "first_decay_steps: 20, t_mul: 1.5}, gradient_accumulation_steps: 4}"


def scheduled_digits(tmp_path, optimizer: str = SCHEDULED, epochs: int = 3, callbacks: str = ""):
    return support.digits(tmp_path, f"{{epochs: {epochs}, batch_size: 32, callbacks: [{callbacks}]}}",
                          **{"optimizer: adam": f"optimizer: {optimizer}"})


def test_history_logs_the_rate_of_each_epoch_end(tmp_path):
    model = specc.load(scheduled_digits(tmp_path))
    history = model.fit(out=tmp_path / "run")
    schedule = model.spec.compile.optimizer.learning_rate
    expected = [schedule(BATCHES * epoch) for epoch in (1, 2, 3)]
    assert [logs["learning_rate"] for logs in history] == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) == 3
    assert model.optimizer.iterations == 3 * BATCHES
    assert "learning_rate" in (tmp_path / "run" / "history.csv").read_text().splitlines()[0]


def test_a_constant_rate_is_not_logged(tmp_path):
    history = specc.load(scheduled_digits(tmp_path, "adam", epochs=1)).fit()
    assert "learning_rate" not in history[0]


def test_monitors_and_file_names_may_use_the_scheduled_rate(tmp_path):
    path = scheduled_digits(tmp_path, callbacks="{type: model_checkpoint, filepath: 'lr.{learning_rate:.5f}.npz'}")
    assert run("validate", path).returncode == 0


def test_resumed_run_follows_its_schedule_exactly(tmp_path):
    """Stopped between accumulated batches (the sum so far is in the checkpoint) and resumed: the same
    weights, optimizer state, rates and history as a run that never stopped."""
    spec = scheduled_digits(tmp_path)
    whole = specc.load(spec)
    whole_history = whole.fit(out=tmp_path / "whole")
    folder = tmp_path / "run"
    for batches in (10, 43, 30):  # 10 and 83 are not multiples of 4: the accumulator holds gradients there
        model, stop = specc.load(spec), StopAfter(batches)
        model.fit(out=folder, resume=folder if (folder / "checkpoint.npz").exists() else None, progress=stop,
                  stop=stop)
        assert model.stopped["reason"] == "interrupted"
    saved = load_checkpoint(folder / "checkpoint.npz")
    assert int(saved.optimizer["iterations"]) == 83 and saved.optimizer[ACCUMULATOR].any()
    final = specc.load(spec)
    history = final.fit(resume=folder)
    assert history == whole_history
    weights, expected = final.get_weights(), whole.get_weights()
    assert all(np.array_equal(weights[k], expected[k]) for k in expected)
    assert final.optimizer.iterations == whole.optimizer.iterations == 3 * BATCHES
    for slot, array in whole.optimizer.state.items():
        assert np.array_equal(final.optimizer.state[slot], array), slot


# -- the spec ------------------------------------------------------------------------------------------------

def test_reduce_lr_on_plateau_refuses_a_schedule(tmp_path):
    path = scheduled_digits(tmp_path, callbacks="{type: ReduceLROnPlateau, monitor: loss}")
    result = run("validate", path)
    assert result.returncode == 1
    assert "fit.callbacks[0]: reduce_lr_on_plateau sets the learning rate, but the optimizer's learning_rate " \
           "is a schedule (CosineDecayRestarts)" in result.stderr, result.stderr


def test_reduce_lr_on_plateau_with_a_constant_rate(tmp_path):
    path = scheduled_digits(tmp_path, "{type: sgd, learning_rate: 0.5}", epochs=3,
                            callbacks="{type: reduce_lr_on_plateau, monitor: loss, patience: 0, min_delta: 10}")
    model = specc.load(path)
    history = model.fit()
    # logged before the epoch's reduction, as Keras: the first epoch improves on nothing, the others reduce
    assert [logs["learning_rate"] for logs in history] == pytest.approx([0.5, 0.5, 0.05])
    assert model.optimizer.learning_rate == pytest.approx(0.005)


@pytest.mark.parametrize("rate,words", [
    ("{type: CosineDecy, initial_learning_rate: 0.1}",
     "learning_rate.type: unknown learning-rate schedule 'CosineDecy' (did you mean 'CosineDecay'?)"),
    ("{type: CosineDecay, initial_learning_rate: 0.1, decay_step: 10}",
     "learning_rate.decay_step: unknown key 'decay_step' (did you mean 'decay_steps'?)"),
    ("{type: PiecewiseConstantDecay, boundaries: [10], values: [0.1]}",
     "learning_rate: 1 boundaries need 2 values, got 1"),
    ("{type: PiecewiseConstantDecay, boundaries: [10, 5], values: [0.1, 0.2, 0.3]}",
     "learning_rate: boundaries must increase"),
    ("{type: ExponentialDecay, initial_learning_rate: 0.1, decay_steps: 0, decay_rate: 0.5}",
     "learning_rate.decay_steps: "),
    ("fast", "learning_rate: expected a number, got a string 'fast'"),
])
def test_schedule_errors(tmp_path, rate, words):
    result = run("validate", scheduled_digits(tmp_path, f"{{type: sgd, learning_rate: {rate}}}"))
    assert result.returncode == 1
    assert f"compile.optimizer.{words}" in result.stderr, result.stderr


def test_steps_are_whole_numbers():
    with pytest.raises(ValueError):
        SCHEDULES["CosineDecay"].model_validate({"type": "CosineDecay", "initial_learning_rate": 0.1,
                                                 "decay_steps": 2.5})
    assert math.isclose(SCHEDULES["CosineDecay"].model_validate(
        {"type": "CosineDecay", "initial_learning_rate": 0.1, "decay_steps": 4})(2), 0.05)
