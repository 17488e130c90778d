"""OneCycle against PyTorch's OneCycleLR (fixture), serialization, errors."""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest

from kerasx.schedules import OneCycle

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "one_cycle_torch.json"
CASES = json.loads(FIXTURE.read_text())["cases"]
# float32 evaluation vs PyTorch's float64: a few ulp (measured <= 6e-7).
RTOL = 1e-6


def schedule_for(config):
    return OneCycle(
        config["max_lr"],
        config["total_steps"],
        pct_start=config["pct_start"],
        anneal_strategy=config["anneal_strategy"],
        div_factor=config["div_factor"],
        final_div_factor=config["final_div_factor"],
        three_phase=config["three_phase"],
    )


def case_id(case):
    c = case["config"]
    phases = "three" if c["three_phase"] else "two"
    return f"{c['anneal_strategy']}-{phases}-T{c['total_steps']}"


def test_fixture_covers_required_configurations():
    kinds = {
        (c["config"]["anneal_strategy"], c["config"]["three_phase"]) for c in CASES
    }
    assert kinds == {("cos", False), ("cos", True), ("linear", False), ("linear", True)}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_learning_rate_matches_pytorch(case):
    schedule = schedule_for(case["config"])
    steps = np.arange(case["config"]["total_steps"])
    values = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(steps)))
    np.testing.assert_allclose(values, case["learning_rates"], rtol=RTOL)
    past = case["past_end"]
    values = [float(schedule(step)) for step in past["steps"]]
    np.testing.assert_allclose(values, past["learning_rate"], rtol=RTOL)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_momentum_matches_pytorch(case):
    schedule = schedule_for(case["config"])
    momentum = [
        float(schedule.momentum(step, case["base_momentum"], case["max_momentum"]))
        for step in [*range(case["config"]["total_steps"]), *case["past_end"]["steps"]]
    ]
    expected = case["momenta"] + [case["past_end"]["momentum"]] * len(
        case["past_end"]["steps"]
    )
    np.testing.assert_allclose(momentum, expected, rtol=RTOL)


def test_hand_computed_values():
    schedule = OneCycle(
        1.0,
        11,
        pct_start=0.5,
        anneal_strategy="linear",
        div_factor=4.0,
        final_div_factor=25.0,
    )
    # initial 0.25, peak at step 4.5 (so step 4 is still warming up), min 0.01.
    values = [float(schedule(s)) for s in (0, 2, 4, 5, 10, 11)]
    expected = [
        0.25,
        0.25 + 0.75 * 2 / 4.5,
        0.25 + 0.75 * 4 / 4.5,
        1.0 - 0.99 * 0.5 / 5.5,
        0.01,
        0.01,
    ]
    np.testing.assert_allclose(values, expected, rtol=RTOL)


def test_zero_length_warmup_is_its_end_value():
    # pct_start * total_steps == 1: PyTorch divides 0 by 0 at step 0.
    schedule = OneCycle(1.0, 10, pct_start=0.1)
    np.testing.assert_allclose(float(schedule(0)), 1.0, rtol=RTOL)
    np.testing.assert_allclose(float(schedule(9)), 1.0 / 25 / 1e4, rtol=RTOL)


def test_serialization_round_trip_and_optimizer_save_load(tmp_path):
    schedule = OneCycle(
        0.3,
        40,
        pct_start=0.2,
        anneal_strategy="linear",
        div_factor=5.0,
        final_div_factor=100.0,
        three_phase=True,
        name="cycle",
    )
    config = schedule.get_config()
    assert config == {
        "max_learning_rate": 0.3,
        "total_steps": 40,
        "pct_start": 0.2,
        "anneal_strategy": "linear",
        "div_factor": 5.0,
        "final_div_factor": 100.0,
        "three_phase": True,
        "name": "cycle",
    }
    assert OneCycle.from_config(config).get_config() == config
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(learning_rate=schedule), "mse")
    model.fit(np.ones((8, 2)), np.zeros((8, 1)), batch_size=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    restored = loaded.optimizer._learning_rate
    assert isinstance(restored, OneCycle) and restored.get_config() == config
    assert int(loaded.optimizer.iterations) == 4
    np.testing.assert_allclose(
        float(loaded.optimizer.learning_rate), float(schedule(4)), rtol=RTOL
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_learning_rate=0.0), "`max_learning_rate`. Expected a float > 0"),
        (
            dict(total_steps=1),
            "`total_steps`. Expected an integer >= 2. Received: total_steps=1",
        ),
        (dict(total_steps=10.0), "`total_steps`. Expected an integer >= 2"),
        (dict(total_steps=True), "`total_steps`. Expected an integer >= 2"),
        (dict(max_learning_rate=float("inf")), "`max_learning_rate`. Expected a"),
        (dict(max_learning_rate=True), "`max_learning_rate`. Expected a float > 0"),
        (
            dict(pct_start="0.3"),
            r"Invalid value received for argument `pct_start`\. Expected a float in "
            r"\(0, 1\)\. Received: pct_start='0\.3'",
        ),
        (dict(three_phase="False"), r"`three_phase`\. Expected a bool"),
        (
            dict(three_phase=True, pct_start=0.9),
            r"`pct_start`\. Expected a float in \(0, 0\.5\] when three_phase=True "
            r"\(the warm-up and its mirror take 2 \* pct_start.*never reaches",
        ),
        (dict(pct_start=1.0), "`pct_start`. Expected a float in \\(0, 1\\)"),
        (dict(pct_start=0.0), "`pct_start`. Expected a float in \\(0, 1\\)"),
        (dict(anneal_strategy="cosine"), "`anneal_strategy`. Expected one of"),
        (dict(div_factor=0.0), "`div_factor`. Expected a float > 0"),
        (dict(final_div_factor=-1.0), "`final_div_factor`. Expected a float > 0"),
    ],
)
def test_validation_errors(kwargs, match):
    arguments = {"max_learning_rate": 0.1, "total_steps": 10, **kwargs}
    max_learning_rate = arguments.pop("max_learning_rate")
    total_steps = arguments.pop("total_steps")
    with pytest.raises(ValueError, match=match):
        OneCycle(max_learning_rate, total_steps, **arguments)


@pytest.mark.parametrize(
    ("momenta", "match"),
    [
        ((1.0, 1.0), "`base_momentum`. Expected a float in \\[0, 1\\)"),
        ((float("nan"), 0.9), "`base_momentum`. Expected a float in \\[0, 1\\)"),
        ((0.9, 0.8), "`max_momentum`. Expected a float in \\[base_momentum, 1\\)"),
    ],
)
def test_momentum_validation_errors(momenta, match):
    with pytest.raises(ValueError, match=match):
        OneCycle(0.1, 10).momentum(0, *momenta)


def test_numpy_scalars_are_accepted():
    schedule = OneCycle(np.float32(0.1), np.int64(100), pct_start=np.float64(0.3))
    assert schedule.total_steps == 100 and type(schedule.total_steps) is int
    assert type(schedule.get_config()["max_learning_rate"]) is float
    # Warm-up ends at step 0.3 * 100 - 1 = 29: the peak; step 0 is 0.1 / 25.
    np.testing.assert_allclose(
        [float(schedule(0)), float(schedule(29))], [0.004, 0.1], rtol=RTOL
    )


def test_three_phase_at_pct_start_one_half_reaches_every_phase():
    # total 10, pct 0.5: peak at step 4, back to initial at step 8, minimum at 9.
    schedule = OneCycle(1.0, 10, pct_start=0.5, three_phase=True)
    values = [float(schedule(s)) for s in (0, 4, 8, 9)]
    np.testing.assert_allclose(values, [0.04, 1.0, 0.04, 0.04 / 1e4], rtol=RTOL)
