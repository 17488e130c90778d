"""examples/deep_mlp.py on a tiny synthetic dataset: what the exercise claims.

- (e) has one AlphaDropout, after the last hidden layer; it is active under
  `training=True` and off in `predict`; MC dropout on the same weights is not;
- the table's accuracies are those of the saved best checkpoints;
- the 1cycle run applied, step by step, Hands-On ML's three-phase rates;
- the SWA model's weights are the mean of the weights at the end of the epochs
  it averaged, and its table accuracy is the saved model's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from example_helpers import (
    EXAMPLE_BACKEND,
    assert_dropout_on_in_training_off_in_predict,
    assert_png,
    check_rows,
    load_example,
    read_results,
)

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

ALPHA = "SELU + AlphaDropout(0.1) before the output"
VARIANTS = [
    "ELU + He normal",
    "+ BatchNorm",
    "SELU + LeCun",
    ALPHA,
    "SELU + AlphaDropout(0.1), 1cycle",
    "SELU + AlphaDropout(0.1), 1cycle + SWA (last 2 epochs)",
]
CHECKPOINTS = ["elu_he", "elu_bn", "selu", "selu_alpha", "one_cycle", "one_cycle_swa"]
LIMIT, EPOCHS, SWA_EPOCHS = 600, 2, 2


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("deep_mlp")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("deep_mlp")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", str(LIMIT),
                "--epochs", str(EPOCHS), "--depth", "3", "--units", "32",
                "--mc-samples", "8", "--swa-epochs", str(SWA_EPOCHS),
                "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


@pytest.fixture(scope="module")
def data(run, synthetic_data_dir):
    example, _, _ = run
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        return example._common.load_split("fashion_mnist", limit=LIMIT)


def test_table_rows(run):
    _, rows, output = run
    check_rows(rows, VARIANTS)
    # patience 5 cannot stop a 2-epoch run; 1cycle has no EarlyStopping.
    assert [row["epochs"] for row in rows] == [EPOCHS] * 6
    recorded = read_results(output, "deep_mlp")
    assert list(recorded) == [
        "results", "one_cycle_max_rate", "lr_sweeps", "mc_dropout"
    ]  # fmt: skip
    assert recorded["results"] == rows
    by_variant = {row["variant"]: row for row in rows}
    rates = json.loads((output / "one_cycle_rates.json").read_text())
    assert recorded["one_cycle_max_rate"] == rates["max_rate"]
    valleys = [s["valley"] for s in recorded["lr_sweeps"].values()]
    assert valleys == [
        row["extra"]["LR sweep valley"]
        for row in rows
        if "LR sweep valley" in row["extra"]
    ]
    mc = recorded["mc_dropout"]
    alpha = by_variant[ALPHA]["extra"]
    assert alpha["MC dropout accuracy"] == mc["mc_accuracy"]
    assert alpha["ECE plain → MC"] == f"{mc['ece']:.4f} → {mc['mc_ece']:.4f}"
    table = (output / "results.md").read_text()
    for variant in VARIANTS:
        assert f"| {variant} |" in table


@pytest.mark.parametrize("index", range(6), ids=CHECKPOINTS)
def test_best_checkpoint_matches_table(run, data, index):
    from kerasx.saving import load

    _, rows, output = run
    model = load(output / f"{CHECKPOINTS[index]}.keras")
    probs = model.predict(data.x_valid, verbose=0)
    accuracy = np.mean(np.argmax(probs, axis=-1) == data.y_valid)
    # Keras' accuracy metric is a float32 mean of the same 0/1 values.
    np.testing.assert_allclose(accuracy, rows[index]["best_val_accuracy"], atol=1e-6)


def test_alpha_dropout_is_one_layer_before_the_output(run):
    from kerasx.saving import load

    _, _, output = run
    model = load(output / "selu_alpha.keras")
    assert [type(layer).__name__ for layer in model.layers[-3:]] == [
        "Dense",
        "AlphaDropout",
        "Dense",
    ]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("AlphaDropout") == 1
    assert model.layers[-2].rate == 0.1


def test_dropout_active_in_training_off_in_predict_on_in_mc(run, data):
    from kerasx.saving import load
    from kerasx.uncertainty import to_mc

    _, _, output = run
    model = load(output / "selu_alpha.keras")
    x = data.x_valid[:16]
    assert_dropout_on_in_training_off_in_predict(model, x)
    mc = to_mc(model)
    assert not np.array_equal(mc.predict(x, verbose=0), mc.predict(x, verbose=0))


def hands_on_one_cycle(iterations: int, max_rate: float) -> np.ndarray:
    """Hands-On ML's 1cycle with its defaults, ending exactly at `last_rate`.

    start = max / 10, last = start / 1000, last_iterations = iterations // 10 + 1,
    half = (iterations - last_iterations) // 2; linear start -> max over
    [0, half], max -> start over [half, 2 half], start -> last over
    [2 half, iterations - 1].
    """
    start, last = max_rate / 10, max_rate / 10 / 1000
    half = (iterations - (iterations // 10 + 1)) // 2
    steps = np.arange(iterations, dtype="float64")
    knots = [0, half, 2 * half, iterations - 1]
    return np.interp(steps, knots, [start, max_rate, start, last])


def test_one_cycle_applied_rates_follow_the_schedule(run):
    _, _, output = run
    recorded = json.loads((output / "one_cycle_rates.json").read_text())
    # 600 images / batch 128 -> 5 steps per epoch, 2 epochs.
    assert recorded["iterations"] == 10
    assert len(recorded["rates"]) == 10
    expected = hands_on_one_cycle(10, recorded["max_rate"])
    # The rate lives in a float32 variable: relative 1e-6 covers its rounding.
    np.testing.assert_allclose(recorded["rates"], expected, rtol=1e-6)
    assert recorded["rates"][4] == pytest.approx(recorded["max_rate"], rel=1e-6)


def test_plots_are_pngs(run):
    _, _, output = run
    for name in (
        "learning_curves.png",
        "val_accuracy.png",
        "lr_vs_loss.png",
        "reliability.png",
    ):
        assert_png(output / name)


def test_swa_model_holds_the_mean_of_the_averaged_epochs(run):
    from kerasx.saving import load

    _, rows, output = run
    saved = np.load(output / "swa_epoch_weights.npz")
    epochs = int(saved["epochs"])
    assert epochs == SWA_EPOCHS
    arrays = [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]
    per_epoch = len(arrays) // epochs
    model = load(output / "one_cycle_swa.keras")
    trainable = [np.asarray(w) for w in model.weights if w.trainable]
    assert len(trainable) == per_epoch
    for i, weight in enumerate(trainable):
        stack = np.stack([arrays[e * per_epoch + i] for e in range(epochs)])
        # float32 running average vs a float64 mean of the same values.
        np.testing.assert_allclose(
            weight, stack.astype("float64").mean(axis=0), rtol=1e-5, atol=1e-7
        )
    # The epochs differ, so the average is not one of them.
    assert not np.allclose(arrays[0], arrays[per_epoch])
    # The row's "vs 1cycle" is the difference of the two rows' accuracies,
    # the 1cycle row's being its best epoch.
    swa_row, one_cycle_row = rows[5], rows[4]
    difference = swa_row["best_val_accuracy"] - one_cycle_row["best_val_accuracy"]
    assert swa_row["extra"]["vs 1cycle best epoch"] == f"{difference:+.4f}"


@pytest.mark.parametrize("swa_epochs", ["0", "3"])
def test_swa_epochs_outside_the_run_is_an_error(run, swa_epochs, capsys):
    example, _, _ = run
    with pytest.raises(SystemExit):
        example.main(["--epochs", "2", "--swa-epochs", swa_epochs])
    assert "--swa-epochs must be in [1, --epochs=2]" in capsys.readouterr().err


def test_variants_option_parses_a_subset(run):
    example, _, _ = run
    args = example.build_parser().parse_args(["--variants", "one_cycle_swa", "selu"])
    assert args.variants == ["one_cycle_swa", "selu"]
    assert example.build_parser().parse_args([]).variants == list(example.VARIANTS)
