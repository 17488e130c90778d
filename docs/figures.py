"""Draws the figures of the Plotting and Choosing options pages.

    python docs/figures.py                 # every figure
    python docs/figures.py --only fused    # the fused-layer chart (no training)

`plotting` figures come from one small, seeded run on Fashion-MNIST (read offline
with `kerasx.datasets.load_data`): a 4 x Dense(100) MLP with Dropout(0.2) on
6 000 training images, an LR range test, 8 epochs of Nadam, then `predict` and
MC dropout (`to_mc` + `mc_predict`, 50 samples) on 2 000 test images. The
`fused` chart plots the train-step benchmark's results files
(`docs/results/train_step_<backend>.json`, the tables of the fused layer's page)
and the memory-mode measurement in `RECORDED` below, which no results file holds.
PNGs go to `docs/img/` at 160 dpi; the numbers the captions quote are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

IMG = Path(__file__).resolve().parent / "img"
DPI = 160
SEED = 42

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "torch"}

# JAX, 20 x [3x3 conv -> BN -> LeakyReLU(0.01)] on (8, 32, 32, 16): MB of the
# residuals the gradient keeps (`benchmarks/batch_norm_activation.py`, a run that
# wrote no results file; the memory table of the Choosing options page).
RECORDED = {
    "residual_mb": {
        "float32": {"Keras": 33.2, "recompute": 20.7, "invert": 11.2},
        "bfloat16": {"Keras": 28.1, "recompute": 10.6, "invert": 5.8},
    },
}


def train_step_results() -> dict[str, dict[tuple[str, str], dict]]:
    """`{backend label: {(model, mode): row}}` of the float32 train-step files."""
    import json

    results = {}
    for backend, label in BACKENDS.items():
        data = json.loads((RESULTS / f"train_step_{backend}.json").read_text())
        results[label] = {(row["case"], row["mode"]): row for row in data["results"]}
    return results


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def fused_chart(plt) -> Path:
    fig, (time_ax, ratio_ax, memory_ax) = plt.subplots(1, 3, figsize=(13, 4.2))
    results = train_step_results()
    variants = {"plain": "plain_ms", "fused": "fused_ms", "no BatchNorm": "no_bn_ms"}
    colors = {"plain": "#7f7f7f", "fused": "#1f77b4", "no BatchNorm": "#c7c7c7"}
    backends = list(results)
    width = 0.26
    for i, (variant, key) in enumerate(variants.items()):
        values = [results[b][("cnn", "default")][key] for b in backends]
        x = np.arange(len(backends)) + (i - 1) * width
        bars = time_ax.bar(x, values, width, label=variant, color=colors[variant])
        time_ax.bar_label(bars, fmt="%.0f", fontsize=8)
    time_ax.set_xticks(np.arange(len(backends)), backends)
    time_ax.set_ylabel("train step (ms, median)")
    time_ax.set_title("CNN, batch 128, default fit mode")
    time_ax.legend(frameon=False, fontsize=8)

    cases = [
        (model.upper(), backend, row)
        for backend in backends
        for (model, mode), row in results[backend].items()
        if mode == "default"
    ]
    for i, (_, _, row) in enumerate(cases):
        low, high = row["speedup_iqr"]
        color = "#1f77b4" if row["speedup"] >= 1.0 else "#d62728"
        ratio_ax.plot([i, i], [low, high], color=color, linewidth=6, alpha=0.5)
        ratio_ax.plot(i, row["speedup"], "o", color=color)
        ratio_ax.text(i, high + 0.01, f"{row['speedup']:.2f}x", ha="center", fontsize=8)
    ratio_ax.axhline(1.0, color="black", linewidth=0.8)
    short = {"TensorFlow": "TF"}
    ratio_ax.set_xticks(
        range(len(cases)), [f"{m}\n{short.get(b, b)}" for m, b, _ in cases]
    )
    ratio_ax.set_xlim(-0.5, len(cases) - 0.5)
    ratio_ax.set_ylim(0.85, 1.2)
    ratio_ax.set_ylabel("speed-up of the fused model (plain / fused)")
    ratio_ax.set_title("Median and IQR of the per-step ratio")

    dtypes = list(RECORDED["residual_mb"])
    modes = ("Keras", "recompute", "invert")
    mode_colors = {"Keras": "#7f7f7f", "recompute": "#1f77b4", "invert": "#2ca02c"}
    for i, mode in enumerate(modes):
        values = [RECORDED["residual_mb"][d][mode] for d in dtypes]
        x = np.arange(len(dtypes)) + (i - 1) * width
        bars = memory_ax.bar(x, values, width, label=mode, color=mode_colors[mode])
        memory_ax.bar_label(bars, fmt="%.1f", fontsize=8)
    memory_ax.set_xticks(np.arange(len(dtypes)), dtypes)
    memory_ax.set_ylabel("residuals kept for the gradient (MB)")
    memory_ax.set_title("Memory modes, 20 conv blocks (JAX)")
    memory_ax.legend(frameon=False, fontsize=8)

    fig.tight_layout()
    return _save(fig, "fused_train_step.png")


def plotting_figures(plt) -> list[Path]:
    import keras

    from kerasx.datasets import load_data
    from kerasx.lr_finder import find_learning_rate
    from kerasx.models import build_mlp
    from kerasx.plotting import (
        plot_learning_curves,
        plot_lr_vs_loss,
        reliability_diagram,
    )
    from kerasx.uncertainty import expected_calibration_error, mc_predict, to_mc

    keras.utils.set_random_seed(SEED)
    (x_full, y_full), (x_test, y_test) = load_data("fashion_mnist")
    x_full, x_test = x_full / 255.0, x_test / 255.0
    x_train, y_train = x_full[:6000], y_full[:6000]
    x_valid, y_valid = x_full[-1000:], y_full[-1000:]
    x_test, y_test = x_test[:2000], y_test[:2000]

    model = build_mlp(
        (28, 28), 10, hidden_units=(100,) * 4, dropout_rate=0.2, dropout="standard"
    )
    model.compile(
        keras.optimizers.Nadam(1e-3),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    result = find_learning_rate(model, x_train, y_train, batch_size=32)
    print("lr suggestions", {k: f"{v:.3g}" for k, v in result.suggestions.items()})
    ax = plot_lr_vs_loss(result)
    ax.figure.set_size_inches(6.5, 4.2)
    ax.figure.tight_layout()
    paths = [_save(ax.figure, "plotting_lr_vs_loss.png")]

    history = model.fit(
        x_train,
        y_train,
        epochs=8,
        batch_size=32,
        validation_data=(x_valid, y_valid),
        verbose=0,
    )
    best = int(np.argmax(history.history["val_accuracy"]))
    print(
        f"best val accuracy {history.history['val_accuracy'][best]:.3f} "
        f"at epoch {best + 1}"
    )
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    plot_learning_curves(history, ax=loss_ax, metrics=("loss",), title="Loss")
    plot_learning_curves(
        history, ax=accuracy_ax, metrics=("accuracy",), title="Accuracy"
    )
    loss_ax.set_ylabel("sparse categorical cross-entropy")
    accuracy_ax.set_ylabel("accuracy")
    for ax in (loss_ax, accuracy_ax):
        ax.set_xlabel("epoch")
        _integer_epochs(ax)
    fig.tight_layout()
    paths.append(_save(fig, "plotting_learning_curves.png"))

    probs = model.predict(x_test, verbose=0)
    mc = mc_predict(to_mc(model), x_test, n_samples=50, seed=SEED)
    for label, p in (("predict", probs), ("MC dropout", mc.mean)):
        accuracy = float(np.mean(p.argmax(-1) == y_test))
        ece = float(expected_calibration_error(y_test, p))
        print(f"{label}: accuracy {accuracy:.3f}, ECE {ece:.3f}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4))
    reliability_diagram(y_test, probs, ax=left, title="predict (dropout off)")
    reliability_diagram(y_test, mc.mean, ax=right, title="MC dropout, 50 samples")
    fig.tight_layout()
    paths.append(_save(fig, "plotting_reliability.png"))
    return paths


def _save(fig, name: str) -> Path:
    IMG.mkdir(exist_ok=True)
    path = IMG / name
    fig.savefig(path, dpi=DPI)
    print("wrote", path.relative_to(IMG.parent.parent))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("fused", "plotting"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if args.only in (None, "fused"):
        fused_chart(plt)
    if args.only in (None, "plotting"):
        plotting_figures(plt)


if __name__ == "__main__":
    main()
