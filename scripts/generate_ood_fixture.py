"""Records scikit-learn's ROC / average-precision values as an OOD fixture.

Run in a virtual environment with the peer (not kerasx's own):

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install "scikit-learn>=1.8"
    /work/peers-venv/bin/python scripts/generate_ood_fixture.py

Writes `tests/fixtures/ood_peers.json`: seeded in- and out-of-distribution
scores (continuous, heavily tied, and a few hand-made edge cases) with
scikit-learn's `roc_auc_score`, `average_precision_score` (OOD positive, and
in-distribution positive on the negated scores) and `min(fpr[tpr >= 0.95])` of
`roc_curve(..., drop_intermediate=False)`; `tests/uncertainty/test_ood_peers.py`
compares `kerasx.uncertainty.ood_metrics` with these numbers.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def peer_metrics(scores_in, scores_out):
    scores = np.concatenate([scores_in, scores_out])
    is_ood = np.r_[np.zeros(len(scores_in)), np.ones(len(scores_out))]
    fpr, tpr, _ = roc_curve(is_ood, scores, drop_intermediate=False)
    return {
        "auroc": float(roc_auc_score(is_ood, scores)),
        "aupr_in": float(average_precision_score(1 - is_ood, -scores)),
        "aupr_out": float(average_precision_score(is_ood, scores)),
        "fpr_at_95_tpr": float(np.min(fpr[tpr >= 0.95])),
    }


def main():
    rng = np.random.default_rng(20261224)
    cases = {
        "continuous": (rng.normal(0.0, 1.0, 300), rng.normal(1.0, 1.2, 200)),
        # Scores rounded to a coarse grid: many ties within and across groups.
        "tied": (
            np.round(rng.normal(0.0, 1.0, 250), 1),
            np.round(rng.normal(0.7, 1.0, 150), 1),
        ),
        # Entropy-like scores, several exactly 0 in both groups.
        "tied_at_zero": (
            np.maximum(rng.normal(0.1, 0.3, 120), 0.0),
            np.maximum(rng.normal(0.4, 0.4, 80), 0.0),
        ),
        "separable": (rng.uniform(0.0, 1.0, 50), rng.uniform(2.0, 3.0, 40)),
        "all_tied": (np.full(7, 0.5), np.full(5, 0.5)),
        "inverted": (rng.uniform(2.0, 3.0, 30), rng.uniform(0.0, 1.0, 20)),
        "tiny": (np.array([0.1, 0.2, 0.6]), np.array([0.5, 0.9])),
    }
    fixture = {
        "generator": "scripts/generate_ood_fixture.py",
        "versions": {
            name: importlib.metadata.version(name) for name in ("scikit-learn", "numpy")
        },
        "cases": {
            name: {
                "scores_in": scores_in.tolist(),
                "scores_out": scores_out.tolist(),
                **peer_metrics(scores_in, scores_out),
            }
            for name, (scores_in, scores_out) in cases.items()
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ood_peers.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path}")
    for name, case in fixture["cases"].items():
        print(name, {k: v for k, v in case.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
