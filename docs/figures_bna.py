"""Draws the speed and memory chart of the BatchNormActivation page.

    python docs/figures_bna.py

Plots recorded measurements (the numbers in `TRAIN_STEP` and `TEMP_MB` below,
copied from the JSON of the commands on the page) and writes
`docs/img/bna_speed_memory.png` at 160 dpi. Nothing in it is random, and the PNG
carries no timestamp or version metadata, so reruns write the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMG = Path(__file__).resolve().parent / "img"
DPI = 160

# `python benchmarks/train_step.py --backend B --alternations 40`, 2-core x86-64 CPU
# shared with other jobs; speedup = plain_ms / fused_ms, bn_limit = plain_ms / no_bn_ms.
TRAIN_STEP = {
    # (backend, case, mode): (speedup, bn_limit); TensorFlow CNN default: run 1
    ("TensorFlow", "CNN", "default"): (1.104, 1.081),
    ("TensorFlow", "CNN", "jit"): (1.051, 1.182),
    ("TensorFlow", "MLP", "default"): (0.959, 1.863),
    ("TensorFlow", "MLP", "jit"): (0.919, 1.242),
    ("JAX", "CNN", "default"): (1.026, 1.087),
    ("JAX", "MLP", "default"): (1.106, 1.355),
    ("torch", "CNN", "default"): (1.195, 1.825),
    ("torch", "MLP", "default"): (1.006, 2.025),
}
# `jax.jit(jax.grad(loss)).lower(...).compile().memory_analysis()` of the CNN train
# step (build_cnn((28, 28, 1), 10), batch 128, float32), temp MB.
TEMP_MB = {
    "Keras BN + ReLU": 175.1,
    "no BatchNorm": 175.1,
    "BatchNormActivation (CPU default)": 175.1,
    "BatchNormActivation, custom VJP": 196.6,
    "Keras BN + ELU": 196.6,
    "BatchNormActivation ELU, custom VJP": 196.6,
    "BatchNormActivation ELU, invert": 252.5,
}


def draw(path: Path = IMG / "bna_speed_memory.png") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, memory) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]}
    )
    short = {"TensorFlow": "TF"}
    labels = [f"{short.get(b, b)} {c}\n{m}" for b, c, m in TRAIN_STEP]
    ratios = np.array([v[0] for v in TRAIN_STEP.values()])
    limits = np.array([v[1] for v in TRAIN_STEP.values()])
    positions = np.arange(len(labels))
    speed.bar(positions - 0.2, ratios, 0.4, label="BatchNormActivation", color="C0")
    speed.bar(positions + 0.2, limits, 0.4, label="no BatchNorm (limit)", color="C7")
    speed.axhline(1.0, color="black", linewidth=0.8)
    for x, ratio in zip(positions, ratios, strict=True):
        speed.annotate(
            f"{ratio:.2f}x", (x - 0.2, ratio), ha="center", va="bottom", fontsize=8
        )
    speed.set_xticks(positions, labels, fontsize=8)
    speed.set_ylabel("train-step speedup vs Keras BN + Activation")
    speed.set_title("End to end: train_on_batch, 2-core CPU")
    speed.legend(fontsize=8, loc="upper left")
    names = list(TEMP_MB)
    memory.barh(np.arange(len(names)), list(TEMP_MB.values()), color="C1")
    memory.set_yticks(np.arange(len(names)), names, fontsize=8)
    memory.invert_yaxis()
    memory.set_xlabel("XLA temp MB (JAX, jitted CNN train step)")
    memory.set_title("Memory")
    for y, value in enumerate(TEMP_MB.values()):
        memory.annotate(f"{value:.0f}", (value, y), va="center", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(draw())
