"""examples/mc_dropout_fashion_mnist.py: the MC result and the dropout claims."""

from __future__ import annotations

import json

import numpy as np
import pytest
from example_helpers import (
    EXAMPLE_BACKEND,
    assert_dropout_on_in_training_off_in_predict,
    assert_png,
    load_example,
)

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

LIMIT, MC_SAMPLES = 600, 10


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("mc_dropout")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("mc_dropout_fashion_mnist")
        report = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", str(LIMIT), "--epochs", "1",
                "--mc-samples", str(MC_SAMPLES), "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
        data = example._common.load_split("fashion_mnist", limit=LIMIT)
    return report, output, data


def test_report_counts(run):
    report, output, _ = run
    assert report["mc_samples"] == MC_SAMPLES
    assert (report["n_train"], report["n_test"]) == (600, 60)
    assert json.loads((output / "results.json").read_text()) == report
    table = (output / "results.md").read_text()
    assert "| accuracy |" in table and "| mutual_information |" in table


def test_mc_mean_is_the_mean_of_its_own_samples(run):
    _, output, _ = run
    saved = np.load(output / "mc_samples.npz")
    samples, mean = saved["samples"], saved["mean"]
    assert samples.shape == (MC_SAMPLES, 60, 10)  # all 60 test images
    # mc_predict merges float32 running means (Chan et al.); numpy sums
    # pairwise in float64 here: relative 1e-6 is float32 round-off.
    np.testing.assert_allclose(mean, samples.astype("float64").mean(0), rtol=1e-6)
    # The samples are stochastic: no two passes agree on every row.
    assert not np.array_equal(samples[0], samples[1])


def test_reported_mc_scores_are_those_of_the_saved_mean(run):
    from kerasx.uncertainty import expected_calibration_error

    report, output, data = run
    mean = np.load(output / "mc_samples.npz")["mean"]
    correct = mean.argmax(axis=1) == data.y_test
    assert report["mc_dropout"]["accuracy"] == float(correct.mean())
    assert report["misclassified"] == int((~correct).sum())
    assert report["mc_dropout"]["ece"] == expected_calibration_error(data.y_test, mean)


def test_dropout_active_in_training_off_in_predict(run):
    from kerasx.saving import load

    _, output, data = run
    model = load(output / "model.keras")
    x = data.x_test[:16]
    assert_dropout_on_in_training_off_in_predict(model, x)


def test_reliability_png(run):
    _, output, _ = run
    assert_png(output / "reliability.png")
