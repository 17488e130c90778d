"""Hands-On ML ch.11 ex.8: a deep MLP on Fashion-MNIST (placeholder demo).

Trains a small Keras MLP for one epoch on Fashion-MNIST loaded offline with
`kerasx.datasets` and prints its validation accuracy. The full reproduction
(ELU/He, BatchNorm, SELU, MC dropout, 1cycle) replaces this script.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from kerasx.datasets import load_data


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default="outputs/deep_mlp")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(42)
    (x_train, y_train), (x_test, y_test) = load_data(args.dataset)
    if args.quick:
        x_train, y_train = x_train[:10000], y_train[:10000]
    x_train = x_train.reshape(len(x_train), -1).astype("float32") / 255.0
    x_test = x_test.reshape(len(x_test), -1).astype("float32") / 255.0
    model = keras.Sequential(
        [keras.Input(x_train.shape[1:])]
        + [
            keras.layers.Dense(100, activation="elu", kernel_initializer="he_normal")
            for _ in range(5)
        ]
        + [keras.layers.Dense(int(np.max(y_train)) + 1, activation="softmax")]
    )
    model.compile(
        optimizer=keras.optimizers.Nadam(5e-4),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        validation_data=(x_test, y_test),
        verbose=0 if args.quiet else "auto",
    )
    seconds = (time.perf_counter() - start) / args.epochs
    accuracy = float(history.history["val_accuracy"][-1])
    print("| variant | val accuracy | epochs | s/epoch |\n|---|---|---|---|")
    row = f"| ELU + He (5x100) | {accuracy:.4f} | {args.epochs} | {seconds:.1f} |"
    print(row)
    return {"val_accuracy": accuracy}


if __name__ == "__main__":
    main()
