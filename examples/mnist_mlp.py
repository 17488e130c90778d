"""MNIST MLP 64-128-256-128-64: sigmoid+SGD vs relu+SGD vs relu+Adam.

Each variant trains with EarlyStopping and a ModelCheckpoint whose filename
template holds the epoch and the validation accuracy
(`checkpoints/<variant>_epoch{epoch:02d}_val_accuracy{val_accuracy:.4f}.keras`).
The best variant's best checkpoint is reloaded with `kerasx.saving.load`; with
`--image path.png` it classifies your own handwritten digit (any format Pillow
reads: converted to grayscale, resized to 28 x 28, inverted when the
background is light, since MNIST digits are light on a dark background).

Writes `learning_curves.png`, `val_accuracy.png`, `results.md`,
`results.json` (and `image_input.png`, `prediction.json` with `--image`).

    python examples/mnist_mlp.py --dataset fashion_mnist --quick
    python examples/mnist_mlp.py --image my_digit.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from kerasx.models import build_mlp
from kerasx.saving import load

HIDDEN_UNITS = (64, 128, 256, 128, 64)
# (variant, activation, initializer, optimizer factory)
VARIANTS = [
    ("sigmoid + SGD", "sigmoid", "glorot_uniform", "sgd"),
    ("relu + SGD", "relu", "he_normal", "sgd"),
    ("relu + Adam", "relu", "he_normal", "adam"),
]


def load_digit_image(path: str | Path, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Reads an image as an MNIST-style array: grayscale, `size`, light on dark.

    The image is converted to 8-bit grayscale, resized with Lanczos
    resampling, and inverted when its border is lighter than mid-gray (a dark
    digit on white paper becomes a light digit on black, as in MNIST).

    Args:
        path: Any image file Pillow can decode (PNG, JPEG, ...).
        size: Output `(width, height)`.

    Returns:
        A float32 array of shape `(height, width)` with values in [0, 1].

    Raises:
        ImportError: if Pillow is not installed.
        ValueError: if the file is missing or is not a readable image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:
        raise ImportError(
            "`--image` needs Pillow: `pip install pillow` (or `pip install "
            "kerasx[dev]`)."
        ) from e
    path = Path(path)
    try:
        with Image.open(path) as image:
            gray = image.convert("L").resize(size, Image.Resampling.LANCZOS)
    except FileNotFoundError as e:
        raise ValueError(f"Cannot read image {str(path)!r}: no such file.") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(
            f"Cannot read image {str(path)!r}: not an image Pillow can decode "
            f"({type(e).__name__}: {e})."
        ) from e
    pixels = np.asarray(gray, dtype="float32") / 255.0
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    if border.mean() > 0.5:
        pixels = 1.0 - pixels
    return pixels


def build_parser():
    parser = _common.make_parser(
        __doc__.splitlines()[0],
        default_dataset="mnist",
        default_epochs=20,
        default_output="outputs/mnist_mlp",
    )
    parser.add_argument("--patience", type=int, default=5, help="EarlyStopping")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--image", default=None, help="your own digit image to classify"
    )
    return parser


def make_optimizer(kind: str) -> keras.optimizers.Optimizer:
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate=0.01)
    return keras.optimizers.Adam(learning_rate=1e-3)


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs the three variants (and `--image`) and returns the table rows."""
    parser = build_parser()
    args = _common.parse(parser, argv)
    image = None
    if args.image is not None:
        try:
            image = load_digit_image(args.image)
        except ValueError as e:
            parser.error(str(e))
    keras.utils.set_random_seed(args.seed)
    data = _common.load_split(args.dataset, limit=args.limit)
    print(f"{args.dataset}: {data.describe()}")
    checkpoints = args.output / "checkpoints"
    checkpoints.mkdir(exist_ok=True)

    rows, histories, best_paths = [], {}, {}
    for variant, activation, initializer, optimizer in VARIANTS:
        slug = variant.replace(" + ", "_").replace(" ", "_").lower()
        for stale in checkpoints.glob(f"{slug}_epoch*.keras"):
            stale.unlink()
        model = build_mlp(
            data.x_train.shape[1:],
            data.num_classes,
            hidden_units=HIDDEN_UNITS,
            activation=activation,
            kernel_initializer=initializer,
            name=slug,
        )
        model.compile(
            optimizer=make_optimizer(optimizer),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        timer = _common.EpochTimer()
        template = f"{slug}_epoch{{epoch:02d}}_val_accuracy{{val_accuracy:.4f}}.keras"
        callbacks = [
            timer,
            keras.callbacks.ModelCheckpoint(
                str(checkpoints / template),
                monitor="val_accuracy",
                save_best_only=True,
            ),
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                patience=args.patience,
                restore_best_weights=True,
            ),
        ]
        history = model.fit(
            data.x_train,
            data.y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_data=(data.x_valid, data.y_valid),
            callbacks=callbacks,
            verbose=args.verbose,
        )
        best_epoch = int(np.argmax(history.history["val_accuracy"])) + 1
        best_paths[variant] = next(checkpoints.glob(f"{slug}_epoch{best_epoch:02d}_*"))
        _, test_accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
        histories[variant] = history
        rows.append(
            _common.row_from_history(
                variant,
                history,
                timer,
                **{
                    "test accuracy": float(test_accuracy),
                    "best checkpoint": best_paths[variant].name,
                },
            )
        )

    plot(args.output, histories)
    records = _common.report(
        rows, args, f"MLP {'-'.join(map(str, HIDDEN_UNITS))} on {args.dataset}"
    )
    if image is not None:
        best = max(rows, key=lambda row: row.best_val_accuracy)
        predict_image(
            load(best_paths[best.variant]), image, data.class_names, args.output
        )
    return records


def predict_image(
    model: keras.Model, image: np.ndarray, class_names: list[str], output: Path
) -> dict:
    """Classifies one preprocessed image; saves what the model saw and the answer."""
    probs = model.predict(image[np.newaxis], verbose=0)[0]
    top = np.argsort(probs)[::-1][:3]
    prediction = {
        "model": model.name,
        "predicted_class": int(top[0]),
        "predicted_label": class_names[top[0]],
        "top3": [
            {"label": class_names[i], "class": int(i), "probability": float(probs[i])}
            for i in top
        ],
    }
    (output / "prediction.json").write_text(json.dumps(prediction, indent=2) + "\n")
    fig, axes = _common.new_figure(size=(3, 3.2))
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title(f"{prediction['predicted_label']} ({probs[top[0]]:.0%})")
    axes[0, 0].axis("off")
    _common.save_figure(fig, output / "image_input.png")
    guesses = ", ".join(
        f"{guess['label']} {guess['probability']:.1%}" for guess in prediction["top3"]
    )
    print(f"Your image ({model.name}): {guesses}")
    return prediction


def plot(output: Path, histories: dict) -> None:
    """One learning-curve panel per variant, and all validation accuracies."""
    _common.plot_history_grid(histories, output)


if __name__ == "__main__":
    main()
