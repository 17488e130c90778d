"""Draws the figures of the Training diagnostics page.

    python docs/figures_diagnostics.py

One small, seeded run on Fashion-MNIST (read offline with
`kerasx.datasets.load_data`): two 10 x Dense(100) ReLU MLPs on 6 000 training
images, SGD(0.05) with batch 64, 2 epochs, one initialised with
`RandomNormal(stddev=0.05)` (Keras' default normal, too small for 10 ReLU
layers), the other with He normal. `ActivationStats` and `GradientStats` record
every second batch on a fixed probe of 256 images. PNGs go to `docs/img/` at
150 dpi; the numbers the captions quote are printed.
"""

from __future__ import annotations

from pathlib import Path

IMG = Path(__file__).resolve().parent / "img"
DPI = 150
SEED = 42
VARIANTS = {
    "normal": (
        "RandomNormal(stddev=0.05)",
        {"class_name": "RandomNormal", "config": {"stddev": 0.05}},
    ),
    "he": ("He normal", "he_normal"),
}


def run(initializer, x_train, y_train, probe):
    import keras

    from kerasx.callbacks import ActivationStats, GradientStats

    keras.utils.set_random_seed(SEED)
    layers = [keras.Input((28, 28)), keras.layers.Flatten()]
    layers += [
        keras.layers.Dense(
            100,
            activation="relu",
            kernel_initializer=keras.initializers.get(initializer),
            name=f"dense_{i + 1}",
        )
        for i in range(10)
    ]
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.SGD(0.05),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    activations = ActivationStats(probe[0], every=2, per="batch", hist_range=(0, 4))
    gradients = GradientStats(probe, every=2, per="batch", norms="layer")
    history = model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=2,
        callbacks=[activations, gradients],
        verbose=0,
    )
    return activations, gradients, history


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kerasx.datasets import load_data
    from kerasx.plotting import plot_activation_stats, plot_gradient_norms

    (x_full, y_full), _ = load_data("fashion_mnist")
    x_train, y_train = x_full[:6000] / 255.0, y_full[:6000]
    probe = (x_full[-256:] / 255.0, y_full[-256:])
    IMG.mkdir(exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, (key, (label, initializer)) in zip(axes, VARIANTS.items(), strict=True):
        activations, gradients, history = run(initializer, x_train, y_train, probe)
        layers = ["dense_1", "dense_4", "dense_7", "dense_10"]
        image = plot_activation_stats(
            activations, layers=layers, ncols=4, figsize=(11, 2.6)
        )
        image.suptitle(
            f"10 x Dense(100) ReLU, {label}: |activation| histograms", fontsize="medium"
        )
        image.tight_layout()
        path = IMG / f"diagnostics_colorful_dimension_{key}.png"
        image.savefig(path, dpi=DPI)
        plt.close(image)
        plot_gradient_norms(gradients, ax=ax, title=label)
        first, last = (gradients.history[f"grad_norm/dense_{i}"] for i in (1, 10))
        print(
            f"{label}: accuracy {history.history['accuracy'][-1]:.3f}; "
            f"near-zero dense_10 first/last "
            f"{activations.history['act_near_zero/dense_10'][0]:.3f}/"
            f"{activations.history['act_near_zero/dense_10'][-1]:.3f}; "
            f"grad norm dense_1/dense_10 at step 0 {first[0] / last[0]:.3g}, "
            f"at the end {first[-1] / last[-1]:.3g}; wrote {path.name}"
        )
    figure.tight_layout()
    figure.savefig(IMG / "diagnostics_gradient_norms.png", dpi=DPI)
    print("wrote diagnostics_gradient_norms.png")


if __name__ == "__main__":
    main()
