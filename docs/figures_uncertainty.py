"""Draws the figures of the MC dropout and uncertainty page.

    KERAS_BACKEND=jax python docs/figures_uncertainty.py

One small, seeded run on Fashion-MNIST (read offline with
`kerasx.datasets.load_data`): a 2 x Dense(256) MLP with Dropout(0.3), trained
for 40 epochs on only 2 000 images so that it overfits and `predict` becomes
overconfident, then scored on 2 000 test images with `predict` and with
`mc_predict(to_mc(model), x, n_samples=50, seed=0)`. PNGs go to `docs/img/` at
160 dpi; the numbers the captions quote are printed.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

IMG = Path(__file__).resolve().parent / "img"
DPI = 160
SEED = 42


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kerasx.datasets import load_data
    from kerasx.plotting import reliability_diagram
    from kerasx.uncertainty import expected_calibration_error, mc_predict, to_mc

    keras.utils.set_random_seed(SEED)
    (x_train, y_train), (x_test, y_test) = load_data("fashion_mnist")
    x_train, y_train = x_train[:2000] / 255.0, y_train[:2000]
    x_test, y_test = x_test[:2000] / 255.0, y_test[:2000]
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=40, batch_size=64, verbose=0)
    probs = model.predict(x_test, verbose=0)
    result = mc_predict(to_mc(model), x_test, n_samples=50, seed=0)

    IMG.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    reliability_diagram(y_test, probs, ax=axes[0], title="predict")
    reliability_diagram(y_test, result.mean, ax=axes[1], title="MC dropout, 50 samples")
    fig.tight_layout()
    fig.savefig(IMG / "uncertainty_reliability.png", dpi=DPI)
    plt.close(fig)

    correct = result.mean.argmax(axis=1) == y_test
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bins = np.linspace(0, result.mutual_information.max(), 30)
    ax.hist(
        result.mutual_information[correct],
        bins,
        alpha=0.6,
        density=True,
        label=f"correct ({correct.sum()})",
    )
    ax.hist(
        result.mutual_information[~correct],
        bins,
        alpha=0.6,
        density=True,
        label=f"misclassified ({(~correct).sum()})",
    )
    ax.set_xlabel("mutual information (nats)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMG / "uncertainty_mutual_information.png", dpi=DPI)
    plt.close(fig)

    print(
        f"accuracy predict {np.mean(probs.argmax(1) == y_test):.4f}, "
        f"MC {np.mean(correct):.4f}"
    )
    print(
        f"ECE predict {expected_calibration_error(y_test, probs):.4f}, "
        f"MC {expected_calibration_error(y_test, result.mean):.4f}"
    )
    print(
        f"mean MI correct {result.mutual_information[correct].mean():.4f}, "
        f"misclassified {result.mutual_information[~correct].mean():.4f}"
    )


if __name__ == "__main__":
    main()
