"""Records netcal, torchmetrics and scikit-learn calibration values as a fixture.

Run in a virtual environment with the peers (not kerasx's own):

    python -m venv /tmp/peers
    /tmp/peers/bin/pip install torch netcal torchmetrics scikit-learn
    /tmp/peers/bin/python scripts/generate_calibration_fixture.py

Writes `tests/fixtures/calibration_peers.json`: the seeded inputs and every
peer's value on them; `tests/uncertainty/test_calibration_peers.py` compares
kerasx with these numbers.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib

import numpy as np
import sklearn.metrics
import torch
import torchmetrics.classification as tmc
from netcal.metrics import ECE

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"
N_BINS = 15


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def multiclass_case(rng, n=400, n_classes=5):
    probs = softmax(2.0 * rng.normal(size=(n, n_classes)))
    # Labels drawn from sharpened probabilities: an overconfident-ish model.
    labels = np.array(
        [rng.choice(n_classes, p=softmax(np.log(p)[None] * 0.7)[0]) for p in probs]
    )
    return probs, labels


def peers_multiclass(probs, labels):
    n_classes = probs.shape[1]
    torch_probs, torch_labels = torch.tensor(probs), torch.tensor(labels)
    values = {
        "netcal_ece": float(ECE(bins=N_BINS).measure(probs, labels)),
        "torchmetrics_ece": float(
            tmc.MulticlassCalibrationError(n_classes, n_bins=N_BINS, norm="l1")(
                torch_probs, torch_labels
            )
        ),
        "sklearn_log_loss": float(
            sklearn.metrics.log_loss(labels, probs, labels=list(range(n_classes)))
        ),
    }
    one_hot = np.eye(n_classes)[labels]
    values["numpy_brier_sum_over_classes"] = float(
        np.mean(np.sum((probs - one_hot) ** 2, 1))
    )
    return values


def main():
    rng = np.random.default_rng(20261201)
    probs, labels = multiclass_case(rng)
    p = rng.uniform(0.0, 1.0, size=400)
    y = (rng.uniform(size=400) < p**1.3).astype(np.int64)
    two = np.stack([1.0 - p, p], axis=1)
    # A row whose true class has probability 0 (NLL floor), and a confidence on a
    # bin edge.
    zero_probs = np.array([[1.0, 0.0, 0.0], [0.2, 0.5, 0.3]])
    zero_labels = np.array([1, 1])
    edge_probs = np.array([[0.5, 0.5], [0.625, 0.375]])  # 0.5: an exact edge
    edge_labels = np.array([0, 1])
    fixture = {
        "generator": "scripts/generate_calibration_fixture.py",
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("netcal", "torchmetrics", "scikit-learn", "torch", "numpy")
        },
        "n_bins": N_BINS,
        "multiclass": {
            "probs": probs.tolist(),
            "labels": labels.tolist(),
            **peers_multiclass(probs, labels),
        },
        "binary": {
            "p": p.tolist(),
            "labels": y.tolist(),
            "sklearn_brier_score_loss": float(sklearn.metrics.brier_score_loss(y, p)),
            "sklearn_log_loss": float(sklearn.metrics.log_loss(y, p)),
            "netcal_ece_positive_class": float(ECE(bins=N_BINS).measure(p, y)),
            "torchmetrics_binary_ece": float(
                tmc.BinaryCalibrationError(n_bins=N_BINS, norm="l1")(
                    torch.tensor(p), torch.tensor(y)
                )
            ),
            "torchmetrics_multiclass_ece_of_two_columns": float(
                tmc.MulticlassCalibrationError(2, n_bins=N_BINS, norm="l1")(
                    torch.tensor(two), torch.tensor(y)
                )
            ),
        },
        "zero_probability": {
            "probs": zero_probs.tolist(),
            "labels": zero_labels.tolist(),
            "sklearn_log_loss": float(
                sklearn.metrics.log_loss(zero_labels, zero_probs, labels=[0, 1, 2])
            ),
        },
        "bin_edge": {
            "probs": edge_probs.tolist(),
            "labels": edge_labels.tolist(),
            "n_bins": 4,
            "netcal_ece": float(ECE(bins=4).measure(edge_probs, edge_labels)),
            "torchmetrics_ece": float(
                tmc.MulticlassCalibrationError(2, n_bins=4, norm="l1")(
                    torch.tensor(edge_probs), torch.tensor(edge_labels)
                )
            ),
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "calibration_peers.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path}")
    for case in ("multiclass", "binary", "zero_probability", "bin_edge"):
        print(case, {k: v for k, v in fixture[case].items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
