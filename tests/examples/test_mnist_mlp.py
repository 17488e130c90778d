"""examples/mnist_mlp.py: the three variants, checkpoint names, and `--image`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from example_helpers import EXAMPLE_BACKEND, assert_png, check_rows, load_example

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

VARIANTS = ["sigmoid + SGD", "relu + SGD", "relu + Adam"]
BAND_CLASS = 6


def write_digit_png(path, *, light_background: bool) -> None:
    """A 56x56 drawing of the synthetic class `BAND_CLASS` (a band of rows)."""
    from PIL import Image

    pixels = np.zeros((28, 28), np.uint8)
    pixels[2 * BAND_CLASS + 4 : 2 * BAND_CLASS + 7, 4:24] = 230
    if light_background:
        pixels = 255 - pixels
    Image.fromarray(pixels).resize((56, 56), Image.Resampling.NEAREST).save(path)


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("mnist_mlp")
    image = output / "my_digit.png"
    write_digit_png(image, light_background=True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("mnist_mlp")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", "1000", "--epochs", "3",
                "--image", str(image), "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


def test_table_rows_and_checkpoint_template(run):
    _, rows, output = run
    by_variant = check_rows(rows, VARIANTS)
    assert by_variant["relu + Adam"]["best_val_accuracy"] > 0.5
    for row in rows:
        name = row["extra"]["best checkpoint"]
        match = re.fullmatch(r"(\w+)_epoch(\d\d)_val_accuracy(\d\.\d{4})\.keras", name)
        assert match, name
        assert int(match[2]) == row["best_epoch"]
        assert float(match[3]) == pytest.approx(row["best_val_accuracy"], abs=5e-5)
        assert (output / "checkpoints" / name).is_file()
    assert_png(output / "learning_curves.png")
    assert_png(output / "val_accuracy.png")


def test_image_prediction(run):
    _, _, output = run
    prediction = json.loads((output / "prediction.json").read_text())
    # The dark band on white paper is inverted to the light band the models saw.
    assert prediction["predicted_class"] == BAND_CLASS
    probabilities = [guess["probability"] for guess in prediction["top3"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0.1 < probabilities[0] <= 1.0
    assert_png(output / "image_input.png")


@pytest.mark.parametrize("light_background", [True, False])
def test_load_digit_image_inverts_light_background(tmp_path, light_background):
    example = load_example("mnist_mlp")
    path = tmp_path / "digit.png"
    write_digit_png(path, light_background=light_background)
    pixels = example.load_digit_image(path)
    assert pixels.shape == (28, 28) and pixels.dtype == np.float32
    # Either way the digit ends up light (230/255) on a black background; the
    # band's middle row is clear of Lanczos ringing at its edges.
    np.testing.assert_allclose(pixels[2 * BAND_CLASS + 5, 8:20], 230 / 255, atol=0.03)
    np.testing.assert_allclose(pixels[:3], 0.0, atol=0.02)


def test_unreadable_image_errors(tmp_path, capsys):
    example = load_example("mnist_mlp")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png at all")
    with pytest.raises(ValueError, match="not an image Pillow can decode"):
        example.load_digit_image(garbage)
    with pytest.raises(ValueError, match="no such file"):
        example.load_digit_image(tmp_path / "missing.png")
    # The script fails fast, before loading data or training.
    with pytest.raises(SystemExit) as info:
        example.main(["--image", str(garbage), "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "Cannot read image" in capsys.readouterr().err
