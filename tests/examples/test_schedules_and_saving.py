"""examples/schedules_and_saving.py: schedules' learning rates and the round trips."""

from __future__ import annotations

import json

import pytest
from example_helpers import assert_png, check_rows, load_example

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
        assert result["max_abs_diff"] <= 1e-6
        assert result["val_accuracy"] == pytest.approx(best, abs=1e-6)
        for name in result["files"]:
            assert (output / name).stat().st_size > 1000
    assert "| native (.keras) |" in (output / "results.md").read_text()


def test_plots_are_pngs(run):
    _, _, output = run
    for name in ("learning_rates.png", "learning_curves.png", "val_accuracy.png"):
        assert_png(output / name)
