"""MC dropout on Fashion-MNIST: the Hands-On ML ch. 11 experiment with kerasx.

Trains the book's dropout MLP (Flatten, 3 x Dropout(0.2), 2 x Dense(100, relu),
softmax; SGD 0.01, momentum 0.9, Nesterov; 10 epochs on 55 000 images), then
compares plain `predict` with `mc_predict(to_mc(model), x, n_samples=100)` on
the test set: accuracy, NLL, Brier score and ECE before and after, and the
uncertainty of correct versus misclassified images.

Writes `model.keras` (the trained model, Keras dropout layers),
`mc_samples.npz` (the MC samples and mean of the first 64 test images),
`reliability.png`, `results.md` and `results.json` to `--output`.

    python examples/mc_dropout_fashion_mnist.py --quick --dataset fashion_mnist \
        --output outputs/mc_dropout_fashion_mnist
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from kerasx.uncertainty import (
    brier_score,
    expected_calibration_error,
    mc_predict,
    negative_log_likelihood,
    to_mc,
)

SAVED_ROWS = 64


def build_parser():
    parser = _common.make_parser(
        __doc__.splitlines()[0],
        default_dataset="fashion_mnist",
        default_epochs=10,
        default_output="outputs/mc_dropout_fashion_mnist",
        quick_epochs=2,
    )
    parser.add_argument("--mc-samples", type=int, default=100)
    parser.add_argument("--dropout-rate", type=float, default=0.2)
    return parser


def build_model(input_shape, num_classes: int, rate: float) -> keras.Model:
    """The book's MLP with a Dropout before each Dense layer."""
    init = "he_normal"
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dropout(rate),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            keras.layers.Dropout(rate),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            keras.layers.Dropout(rate),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def scores(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "nll": negative_log_likelihood(y, probs),
        "brier": brier_score(y, probs),
        "ece": expected_calibration_error(y, probs),
    }


def main(argv: list[str] | None = None) -> dict:
    """Trains, compares `predict` with MC dropout, returns the report dict."""
    args = _common.parse(build_parser(), argv)
    keras.utils.set_random_seed(args.seed)
    data = _common.load_split(args.dataset, limit=args.limit)
    print(f"{args.dataset}: {data.describe()}")

    model = build_model(data.x_train.shape[1:], data.num_classes, args.dropout_rate)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        epochs=args.epochs,
        validation_data=(data.x_valid, data.y_valid),
        verbose=args.verbose,
    )
    train_s = time.perf_counter() - start
    model.save(args.output / "model.keras")

    plain = model.predict(data.x_test, verbose=0)
    start = time.perf_counter()
    result = mc_predict(
        to_mc(model),
        data.x_test,
        n_samples=args.mc_samples,
        seed=args.seed,
        return_samples=True,
    )
    mc_s = time.perf_counter() - start
    np.savez(
        args.output / "mc_samples.npz",
        samples=result.samples[:, :SAVED_ROWS],
        mean=result.mean[:SAVED_ROWS],
    )

    y_test = data.y_test
    predicted = result.mean.argmax(axis=1)
    correct = predicted == y_test
    std_of_prediction = result.std[np.arange(len(predicted)), predicted]
    uncertainty = {}
    for name, values in [
        ("predictive_entropy", result.predictive_entropy),
        ("mutual_information", result.mutual_information),
        ("variation_ratio", result.variation_ratio),
        ("std_of_predicted_class", std_of_prediction),
    ]:
        uncertainty[name] = {
            "correct": float(values[correct].mean()) if correct.any() else None,
            "misclassified": float(values[~correct].mean())
            if (~correct).any()
            else None,
        }

    report = {
        "example": "mc_dropout_fashion_mnist",
        "backend": keras.backend.backend(),
        "dataset": args.dataset,
        "epochs": args.epochs,
        "mc_samples": args.mc_samples,
        "n_train": len(data.x_train),
        "n_test": len(y_test),
        "train_seconds": round(train_s, 1),
        "mc_predict_seconds": round(mc_s, 2),
        "predict": scores(y_test, plain),
        "mc_dropout": scores(y_test, result.mean),
        "uncertainty": uncertainty,
        "misclassified": int((~correct).sum()),
    }
    lines = [
        f"MC dropout ({args.mc_samples} samples) on {args.dataset}: "
        f"{data.describe()}; backend {report['backend']}, Keras {keras.__version__}; "
        f"epochs {args.epochs}; seed {args.seed}",
        "",
        "| metric (test set) | predict | MC dropout |",
        "|---|---|---|",
    ]
    for key in ("accuracy", "nll", "brier", "ece"):
        before, after = report["predict"][key], report["mc_dropout"][key]
        lines.append(f"| {key} | {before:.4f} | {after:.4f} |")
    lines += ["", "| uncertainty (mean) | correct | misclassified |", "|---|---|---|"]
    for key, value in uncertainty.items():
        lines.append(
            f"| {key} | {_common.format_cell(value['correct'])} | "
            f"{_common.format_cell(value['misclassified'])} |"
        )
    table = "\n".join(lines)
    print(f"\n{table}\n")
    (args.output / "results.md").write_text(table + "\n")
    (args.output / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(args.output, y_test, plain, result.mean)
    return report


def plot(output: Path, y_test: np.ndarray, plain: np.ndarray, mc_mean: np.ndarray):
    """Reliability diagrams of `predict` and of the MC mean, side by side."""
    from kerasx.plotting import reliability_diagram

    fig, axes = _common.new_figure(2, size=(5, 4.5))
    reliability_diagram(y_test, plain, ax=axes[0, 0], title="predict")
    reliability_diagram(y_test, mc_mean, ax=axes[0, 1], title="MC dropout (mean)")
    _common.save_figure(fig, output / "reliability.png")


if __name__ == "__main__":
    main()
