"""examples/cnn_cifar10.py on synthetic 28x28 images: rows, checkpoints, plots."""

from __future__ import annotations

import importlib.util

import pytest
from example_helpers import EXAMPLE_BACKEND, assert_png, check_rows, load_example

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

VARIANTS = [
    "max-pool + GAP",
    "stride-2 conv + GAP",
    "max-pool + flatten",
    "max-pool + GAP + L2(1e-4)",
]


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("cnn")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("cnn_cifar10")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", "200", "--epochs", "1",
                "--filters", "4", "8", "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


def test_rows(run):
    _, rows, output = run
    by_variant = check_rows(rows, VARIANTS)
    # Structure shows in the parameter counts: stride-2 convs have the same
    # kernels as max-pooling, the flatten head adds a 7*7*8 -> 128 Dense layer.
    params = {name: row["extra"]["params"] for name, row in by_variant.items()}
    assert params["stride-2 conv + GAP"] == params["max-pool + GAP"]
    assert params["max-pool + GAP + L2(1e-4)"] == params["max-pool + GAP"]
    assert params["max-pool + flatten"] > params["max-pool + GAP"] + 7 * 7 * 8 * 128
    for name in ("maxpool_gap", "stride_gap", "maxpool_flatten", "maxpool_gap_l2"):
        assert (output / f"{name}.keras").is_file()


@pytest.mark.parametrize(
    "index, name",
    list(enumerate(("maxpool_gap", "stride_gap", "maxpool_flatten", "maxpool_gap_l2"))),
)
def test_table_matches_the_best_checkpoint(run, kerasx_data, index, name):
    import numpy as np

    from kerasx.saving import load
    from kerasx.uncertainty import expected_calibration_error

    example, rows, output = run
    data = example._common.load_split("fashion_mnist", limit=200, channels_last=True)
    probs = load(output / f"{name}.keras").predict(data.x_test, verbose=0)
    extra = rows[index]["extra"]
    assert extra["test accuracy"] == float(np.mean(probs.argmax(-1) == data.y_test))
    assert extra["test ECE"] == expected_calibration_error(data.y_test, probs)
    valid = load(output / f"{name}.keras").predict(data.x_valid, verbose=0)
    valid_accuracy = np.mean(valid.argmax(-1) == data.y_valid)
    # Keras' accuracy metric is a float32 mean of the same 0/1 values.
    best = rows[index]["best_val_accuracy"]
    np.testing.assert_allclose(valid_accuracy, best, atol=1e-6)


def test_plots_are_pngs(run):
    _, _, output = run
    assert_png(output / "learning_curves.png")
    assert_png(output / "val_accuracy.png")
    if importlib.util.find_spec("kerasx.plotting") is not None:
        assert_png(output / "reliability.png")
