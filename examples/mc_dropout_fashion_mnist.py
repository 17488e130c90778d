"""MC dropout on Fashion-MNIST: the Hands-On ML ch. 11 experiment with kerasx.

Trains the book's dropout MLP (Flatten, 3 x Dropout(0.2), 2 x Dense(100, relu),
softmax; SGD 0.01, momentum 0.9, Nesterov; 10 epochs on 55 000 images), then
compares plain `predict` with `mc_predict(to_mc(model), x, n_samples=100)`:
accuracy, NLL, Brier score and ECE before/after, and the uncertainty of
correct versus misclassified test images. Saves a reliability diagram.

    KERAS_BACKEND=tensorflow python examples/mc_dropout_fashion_mnist.py [--quick]

Prints a table and, on the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np

from kerasx.datasets import load_data
from kerasx.uncertainty import (
    brier_score,
    expected_calibration_error,
    mc_predict,
    negative_log_likelihood,
    to_mc,
)


def build_model():
    init = "he_normal"
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def scores(y, probs):
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "nll": negative_log_likelihood(y, probs),
        "brier": brier_score(y, probs),
        "ece": expected_calibration_error(y, probs),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("mc_dropout_outputs"))
    args = parser.parse_args(argv)

    (x_full, y_full), (x_test, y_test) = load_data("fashion_mnist")
    x_full, x_test = x_full.astype("float32") / 255, x_test.astype("float32") / 255
    n_valid = min(5000, len(x_full) // 10)  # The book's 5 000 on the real data.
    x_train, y_train = x_full[:-n_valid], y_full[:-n_valid]
    x_valid, y_valid = x_full[-n_valid:], y_full[-n_valid:]
    if args.quick:
        args.epochs, args.n_samples = 1, 10
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:500], y_test[:500]

    keras.utils.set_random_seed(args.seed)
    model = build_model()
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        validation_data=(x_valid, y_valid),
        verbose=0,
    )
    train_s = time.perf_counter() - start

    plain = model.predict(x_test, verbose=0)
    start = time.perf_counter()
    result = mc_predict(to_mc(model), x_test, n_samples=args.n_samples, seed=args.seed)
    mc_s = time.perf_counter() - start

    correct = result.mean.argmax(axis=1) == y_test
    predicted = result.mean.argmax(axis=1)
    std_of_prediction = result.std[np.arange(len(predicted)), predicted]
    uncertainty = {}
    for name, values in [
        ("predictive_entropy", result.predictive_entropy),
        ("mutual_information", result.mutual_information),
        ("variation_ratio", result.variation_ratio),
        ("std_of_predicted_class", std_of_prediction),
    ]:
        uncertainty[name] = {
            "correct": float(values[correct].mean()),
            "misclassified": float(values[~correct].mean()),
        }

    report = {
        "example": "mc_dropout_fashion_mnist",
        "backend": keras.backend.backend(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "epochs": args.epochs,
        "n_samples": args.n_samples,
        "n_test": len(y_test),
        "train_seconds": round(train_s, 1),
        "mc_predict_seconds": round(mc_s, 2),
        "predict": scores(y_test, plain),
        "mc_dropout": scores(y_test, result.mean),
        "uncertainty": uncertainty,
        "misclassified": int((~correct).sum()),
    }

    print("| metric | predict | MC dropout |\n|---|---|---|")
    for key in ("accuracy", "nll", "brier", "ece"):
        before, after = report["predict"][key], report["mc_dropout"][key]
        print(f"| {key} | {before:.4f} | {after:.4f} |")
    print("\n| uncertainty (mean) | correct | misclassified |\n|---|---|---|")
    for key, value in uncertainty.items():
        print(f"| {key} | {value['correct']:.4f} | {value['misclassified']:.4f} |")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from kerasx.plotting import reliability_diagram

        args.out.mkdir(parents=True, exist_ok=True)
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
        reliability_diagram(y_test, plain, ax=axes[0], title="predict")
        reliability_diagram(y_test, result.mean, ax=axes[1], title="MC dropout")
        fig.tight_layout()
        fig.savefig(args.out / "reliability.png", dpi=100)
        plt.close(fig)
        report["figure"] = str(args.out / "reliability.png")
    except ImportError:  # The `plot` extra is optional.
        pass
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
