"""examples/schedules_and_saving.py: the applied rates and exact round trips."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from example_helpers import EXAMPLE_BACKEND, assert_png, check_rows, load_example

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

VARIANTS = ["constant", "exponential decay", "1cycle (OneCycle schedule)"]


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("schedules")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("schedules_and_saving")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", "320", "--epochs", "2",
                "--batch-size", "32", "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


def test_rows_and_final_learning_rates(run):
    _, rows, _ = run
    by_variant = check_rows(rows, VARIANTS)
    lr0 = 0.01
    assert by_variant["constant"]["extra"]["final lr"] == pytest.approx(lr0)
    # lr0 * 0.1 ** (epoch / s) with s = 2 epochs, set at the start of epoch 2.
    decay = by_variant["exponential decay"]
    assert decay["epochs"] == 2  # patience 5 cannot stop a 2-epoch run
    assert decay["extra"]["final lr"] == pytest.approx(lr0 * 0.1**0.5, rel=1e-6)
    # OneCycle(0.05, total_steps=20) ends at 0.05 / 25 / 1e4 after its last step.
    one_cycle = by_variant["1cycle (OneCycle schedule)"]
    assert one_cycle["epochs"] == 2
    assert one_cycle["extra"]["final lr"] == pytest.approx(0.05 / 25 / 1e4, rel=1e-4)


def test_every_format_round_trips(run):
    _, rows, output = run
    saved = json.loads((output / "saving.json").read_text())
    assert [s["format"] for s in saved] == [
        "HDF5 (.h5)",
        "JSON + weights (.json)",
        "weights only (.weights.h5)",
        "native (.keras)",
    ]
    best = max(row["best_val_accuracy"] for row in rows)
    for result in saved:
        assert result["max_abs_diff"] == 0.0
        assert result["val_accuracy"] == pytest.approx(best, abs=1e-6)
        for name in result["files"]:
            assert (output / name).stat().st_size > 1000
    assert "| native (.keras) |" in (output / "results.md").read_text()


def test_saved_files_reload_to_identical_predictions(run, kerasx_data):
    from kerasx.saving import load

    example, _, output = run
    data = example._common.load_split("fashion_mnist", limit=320)
    reference = load(output / "model.keras")
    expected = reference.predict(data.x_valid, verbose=0)
    for name in ("model.h5", "architecture.json"):
        loaded = load(output / name)
        np.testing.assert_array_equal(loaded.predict(data.x_valid, verbose=0), expected)
    fresh = keras.models.clone_model(reference)
    loaded = load(output / "weights_only.weights.h5", model=fresh)
    np.testing.assert_array_equal(loaded.predict(data.x_valid, verbose=0), expected)


def torch_one_cycle(step: int, max_lr: float, total_steps: int) -> float:
    """`torch.optim.lr_scheduler.OneCycleLR` defaults (cos, pct_start 0.3)."""
    initial, minimum = max_lr / 25, max_lr / 25 / 1e4
    up_end = 0.3 * total_steps - 1

    def cos(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    if step <= up_end:
        return cos(initial, max_lr, step / up_end)
    return cos(max_lr, minimum, (step - up_end) / (total_steps - 1 - up_end))


def test_applied_rates_follow_each_schedule(run):
    _, _, output = run
    recorded = json.loads((output / "applied_rates.json").read_text())
    assert recorded["total_steps"] == 20  # 320 images / batch 32, 2 epochs
    rates = recorded["rates"]
    assert [len(values) for values in rates.values()] == [20, 20, 20]
    # Rates live in float32: relative 1e-6.
    np.testing.assert_allclose(rates["constant"], [0.01] * 20, rtol=1e-6)
    decay = [0.01] * 10 + [0.01 * 0.1**0.5] * 10  # set per epoch, s = 2 epochs
    np.testing.assert_allclose(rates["exponential decay"], decay, rtol=1e-6)
    expected = [torch_one_cycle(step, 0.05, 20) for step in range(20)]
    np.testing.assert_allclose(rates["1cycle (OneCycle schedule)"], expected, rtol=1e-6)


def test_plots_are_pngs(run):
    _, _, output = run
    for name in ("learning_rates.png", "learning_curves.png", "val_accuracy.png"):
        assert_png(output / name)
