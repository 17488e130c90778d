"""examples/mc_dropout_fashion_mnist.py: every number of its tables, recomputed.

The example saves every probability, label, OOD score and prediction set its
tables come from (`predictions.npz`); these tests recompute the tables from
those arrays with NumPy float64 code written here (no kerasx metric), check
that each temperature minimises the NLL of the temperature split (and so was
not fitted on the test set), that the conformal sets are the split-conformal
sets of the calibration split, and that the docs page quotes the recorded run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from example_helpers import (
    EXAMPLE_BACKEND,
    assert_dropout_on_in_training_off_in_predict,
    assert_png,
    load_example,
    read_results,
    rendered_page,
    synthetic_images,
    write_idx,
)

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

LIMIT, MC_SAMPLES, BOOTSTRAP = 600, 10, 50
N_TEST = 60  # LIMIT // 10 test images; the 60 validation images split 30 / 30
EPS = np.finfo(np.float64).eps
VARIANTS = [
    "predict",
    "predict_temperature",
    "mc_dropout",
    "mc_dropout_temperature",
    "ensemble",
    "ensemble_temperature",
]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture(scope="module")
def noisy_data_dir(tmp_path_factory):
    """The synthetic idx dataset with a quarter of the labels redrawn at random.

    On the clean one the network classifies every validation image correctly,
    and the temperatures run to the end of their range (T -> 0); label noise
    gives interior temperatures and conformal sets of several sizes.
    """
    root = tmp_path_factory.mktemp("kerasx_noisy_data")
    directory = root / "fashion-mnist"
    directory.mkdir()
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 1400), ("t10k", 200)):
        images, labels = synthetic_images(n, rng)
        noisy = rng.random(n) < 0.25
        labels[noisy] = rng.integers(0, 10, size=int(noisy.sum()))
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(scope="module")
def run(noisy_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("mc_dropout")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(noisy_data_dir))
        example = load_example("mc_dropout_fashion_mnist")
        report = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", str(LIMIT), "--epochs", "1",
                "--mc-samples", str(MC_SAMPLES), "--ensemble-size", "2",
                "--bootstrap", str(BOOTSTRAP), "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
        data = example._common.load_split("fashion_mnist", limit=LIMIT)
    with np.load(output / "predictions.npz") as saved:
        arrays = dict(saved)
    return SimpleNamespace(
        example=example, report=report, output=output, data=data, arrays=arrays
    )


def softmax_of_log(probs, temperature):
    logits = np.log(np.maximum(np.asarray(probs, np.float64), EPS)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def nll(labels, probs):
    return float(
        -np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], EPS)))
    )


def ece_15_bins(labels, probs):
    """Guo et al.'s ECE: right-closed equal-width bins, the lowest in bin 0."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    total = 0.0
    for b in range(15):
        low, high = b / 15, (b + 1) / 15
        inside = (confidence > low) & (confidence <= high)
        if b == 0:
            inside |= confidence <= low
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            total += inside.sum() * gap
    return total / len(labels)


def test_report_counts_and_files(run):
    report, output = run.report, run.output
    assert (report["n_train"], report["n_test"]) == (LIMIT, N_TEST)
    assert (report["n_temperature"], report["n_calibration"]) == (30, 30)
    assert (report["mc_samples"], report["ensemble_size"]) == (MC_SAMPLES, 2)
    assert read_results(output, "mc_dropout_fashion_mnist") == report
    assert list(report["calibration"]) == VARIANTS
    table = (output / "results.md").read_text()
    for row in ("| MC dropout + temperature |", "| mutual information (MC) |"):
        assert row in table
    np.testing.assert_array_equal(run.arrays["y_test"], run.data.y_test)
    np.testing.assert_array_equal(run.arrays["y_temperature"], run.data.y_valid[:30])
    np.testing.assert_array_equal(run.arrays["y_calibration"], run.data.y_valid[30:])


def test_mc_mean_is_the_mean_of_its_own_samples(run):
    saved = np.load(run.output / "mc_samples.npz")
    samples, mean = saved["samples"], saved["mean"]
    assert samples.shape == (MC_SAMPLES, N_TEST, 10)  # all 60 test images
    # mc_predict merges float32 running means (Chan et al.); numpy sums
    # pairwise in float64 here: relative 1e-6 is float32 round-off.
    np.testing.assert_allclose(mean, samples.astype("float64").mean(0), rtol=1e-6)
    np.testing.assert_allclose(run.arrays["mc_dropout_test"], mean, rtol=1e-7)
    # The samples are stochastic: no two passes agree on every row.
    assert not np.array_equal(samples[0], samples[1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_calibration_table_recomputed(run, variant):
    labels = run.arrays["y_test"]
    probs = run.arrays[f"{variant}_test"].astype(np.float64)  # predict's are float32
    row = run.report["calibration"][variant]
    one_hot = np.eye(10)[labels]
    assert row["accuracy"] == np.mean(probs.argmax(axis=1) == labels)
    assert row["nll"] == pytest.approx(nll(labels, probs), rel=1e-12)
    brier = np.mean(np.sum((probs - one_hot) ** 2, axis=1))
    assert row["brier"] == pytest.approx(brier, rel=1e-12)
    assert row["ece"] == pytest.approx(ece_15_bins(labels, probs), abs=1e-12)
    # The documented percentile bootstrap: resample rows, seed 42.
    indices = np.random.default_rng(42).integers(0, N_TEST, size=(BOOTSTRAP, N_TEST))
    resampled = [ece_15_bins(labels[rows], probs[rows]) for rows in indices]
    low, high = np.percentile(resampled, [2.5, 97.5])
    assert (row["ece_low"], row["ece_high"]) == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize("base", ["predict", "mc_dropout", "ensemble"])
def test_temperature_minimises_the_nll_of_the_temperature_split(run, base):
    temperature = run.report["temperatures"][base]
    labels = run.arrays["y_temperature"]
    probs = run.arrays[f"{base}_temp"].astype(np.float64)
    # Golden-section search on log(T), independent of kerasx's Newton solver.
    low, high = -10.0, 10.0
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if nll(labels, softmax_of_log(probs, math.exp(a))) < nll(
            labels, softmax_of_log(probs, math.exp(b))
        ):
            high = b
        else:
            low = a
    assert math.exp(-9) < temperature < math.exp(9)  # a minimum inside the range
    assert temperature == pytest.approx(math.exp((low + high) / 2), rel=1e-5)
    for split in ("temp", "cal", "test"):
        np.testing.assert_allclose(
            run.arrays[f"{base}_temperature_{split}"],
            softmax_of_log(run.arrays[f"{base}_{split}"], temperature),
            rtol=1e-10,
            atol=1e-15,
        )


def test_saved_calibrated_model_applies_the_plain_temperature(run):
    from kerasx.saving import load

    model = load(run.output / "model_calibrated.keras", compile=False)
    assert model.layers[-1].temperature == run.report["temperatures"]["predict"]
    # The layer scales in float32: 1e-5 absolute on probabilities.
    np.testing.assert_allclose(
        model.predict(run.data.x_test, verbose=0),
        run.arrays["predict_temperature_test"],
        atol=1e-5,
    )


def brute_force_ood(scores_in, scores_out):
    """AUROC by pair counting, AP and FPR@95 % TPR over every distinct threshold."""
    greater = (scores_out[:, None] > scores_in[None, :]).mean()
    ties = (scores_out[:, None] == scores_in[None, :]).mean()
    points = []
    for t in np.unique(np.concatenate([scores_in, scores_out]))[::-1]:
        points.append((np.mean(scores_out >= t), np.mean(scores_in >= t)))
    tpr, fpr = np.array(points).T

    def average_precision(positive, negative):
        recall_before, total = 0.0, 0.0
        for t in np.unique(np.concatenate([positive, negative]))[::-1]:
            hits, alarms = np.sum(positive >= t), np.sum(negative >= t)
            recall = hits / len(positive)
            total += (recall - recall_before) * hits / (hits + alarms)
            recall_before = recall
        return total

    return {
        "auroc": greater + ties / 2,
        "aupr_in": average_precision(-scores_in, -scores_out),
        "aupr_out": average_precision(scores_out, scores_in),
        "fpr_at_95_tpr": fpr[tpr >= 0.95].min(),
    }, (np.r_[0.0, fpr], np.r_[0.0, tpr])


@pytest.mark.parametrize(
    "score", ["max_prob_predict", "max_prob", "entropy", "mutual_information"]
)
def test_ood_table_and_roc_points_recomputed(run, score):
    ood = run.report["ood"]
    is_out = run.arrays["ood_is_out"]
    np.testing.assert_array_equal(is_out, np.isin(run.data.y_test, [5, 9]))
    assert (ood["out_classes"], ood["in_classes"]) == ([5, 9], [0, 1, 2, 3, 4, 6, 7, 8])
    assert (ood["n_in"], ood["n_out"]) == (int((~is_out).sum()), int(is_out.sum()))
    assert ood["n_train"] == int(np.isin(run.data.y_train, ood["in_classes"]).sum())
    values = run.arrays[f"ood_score_{score}"]
    expected, (fpr, tpr) = brute_force_ood(values[~is_out], values[is_out])
    for name, value in expected.items():
        assert ood["scores"][score][name] == pytest.approx(value, abs=1e-12), name
    example_fpr, example_tpr = run.example.roc_points(values[~is_out], values[is_out])
    np.testing.assert_allclose(example_fpr, fpr, atol=1e-15)
    np.testing.assert_allclose(example_tpr, tpr, atol=1e-15)


def test_ood_scores_are_in_their_ranges(run):
    arrays = run.arrays
    for name in ("max_prob_predict", "max_prob"):  # 1 - max of 8 probabilities
        assert np.all(
            (arrays[f"ood_score_{name}"] >= 0)
            & (arrays[f"ood_score_{name}"] <= 7 / 8 + 1e-6)
        )
    entropy = arrays["ood_score_entropy"]
    assert np.all(entropy <= math.log(8) + 1e-5)
    assert np.all(arrays["ood_score_mutual_information"] >= -1e-6)
    assert np.all(arrays["ood_score_mutual_information"] <= entropy + 1e-6)


@pytest.mark.parametrize("predictor", ["predict", "mc_dropout"])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_conformal_sets_recomputed(run, predictor, alpha):
    arrays = run.arrays
    labels, cal = arrays["y_calibration"], arrays[f"{predictor}_cal"]
    test, y_test = arrays[f"{predictor}_test"], arrays["y_test"]
    rows = {
        (row["method"], row["alpha"]): row
        for row in run.report["conformal"]
        if row["predictor"] == predictor
    }
    # LAC: the ceil(31 (1 - alpha))-th smallest calibration score 1 - p_y.
    k = math.ceil((len(labels) + 1) * (1 - alpha))
    cutoff = np.sort(1.0 - cal[np.arange(len(labels)), labels])[k - 1]
    lac = arrays[f"sets_{predictor}_lac_{alpha}"]
    np.testing.assert_array_equal(lac, 1.0 - test <= cutoff + 1e-8)
    # APS: each set is the top-ranked classes (a prefix of the sorted
    # probabilities, ties kept together).
    aps = arrays[f"sets_{predictor}_aps_{alpha}"]
    for probs, members in zip(test, aps, strict=True):
        if members.any():
            assert np.all(probs[~members] <= probs[members].min() + 1e-12)
    for method, sets in (("lac", lac), ("aps", aps)):
        row = rows[(method, alpha)]
        assert row["coverage"] == np.mean(sets[np.arange(N_TEST), y_test])
        assert row["mean_size"] == np.mean(sets.sum(axis=1))
        assert row["empty"] == np.mean(sets.sum(axis=1) == 0)


def test_dropout_active_in_training_off_in_predict(run):
    from kerasx.saving import load

    model = load(run.output / "model.keras")
    assert_dropout_on_in_training_off_in_predict(model, run.data.x_test[:16])


@pytest.mark.parametrize("name", ["reliability", "ood_roc", "set_sizes"])
def test_pngs(run, name):
    assert_png(run.output / f"{name}.png")


def test_docs_page_quotes_the_recorded_run(run):
    """Every table row of the recorded full run's JSON is on the docs page."""
    recorded = json.loads(
        (DOCS / "results" / "mc_dropout_fashion_mnist.json").read_text()
    )
    assert (recorded["backend"], recorded["quick"], recorded["limit"]) == (
        "tensorflow",
        False,
        None,
    )
    data = SimpleNamespace(
        describe=lambda: "",
        class_names=run.example._common.CLASS_NAMES["fashion_mnist"],
    )
    args = SimpleNamespace(
        **{
            key: recorded[key]
            for key in (
                "mc_samples",
                "ensemble_size",
                "dataset",
                "epochs",
                "seed",
                "quick",
                "limit",
            )
        }
    )
    page = rendered_page("mc_dropout_fashion_mnist")
    table = run.example.format_report(recorded, data, args)
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 + 6 + 4 + 8 + 4  # headers + calibration, OOD, conformal, MC
    for line in rows:
        assert line in page, line
