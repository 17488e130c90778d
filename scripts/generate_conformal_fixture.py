"""Records MAPIE's split conformal prediction sets (LAC, APS) as a fixture.

Run in a virtual environment with the peer (not kerasx's own):

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install mapie
    /work/peers-venv/bin/python scripts/generate_conformal_fixture.py

MAPIE needs an estimator: a prefit classifier whose inputs are row indices into
fixed probabilities stands in for the model. Writes
`tests/fixtures/conformal_peers.json` with the seeded probabilities, MAPIE's
LAC sets, and for APS its threshold (`conformity_score_function_.quantiles_`)
and its sets for `include_last_label` True, False and "randomized", with the
uniforms MAPIE drew (`RandomState(random_state)` restarted for the calibration
scores and again for the test rows), so `tests/uncertainty/test_conformal_peers.py`
can replay them.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib

import numpy as np
from mapie.classification import SplitConformalClassifier
from sklearn.base import BaseEstimator, ClassifierMixin

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"
RANDOM_STATE = 7


class FixedProbabilities(ClassifierMixin, BaseEstimator):
    """A prefit classifier returning stored probabilities for row indices."""

    def __init__(self, probs=None):
        self.probs = probs

    def fit(self, x, y):
        self.classes_ = np.arange(self.probs.shape[1])
        return self

    def predict_proba(self, x):
        return self.probs[np.asarray(x)[:, 0].astype(int)]

    def predict(self, x):
        return np.argmax(self.predict_proba(x), axis=1)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mapie_sets(probs, labels, n_cal, alpha, score, include_last_label=True):
    clf = FixedProbabilities(probs).fit(None, None)
    rows = np.arange(len(probs))[:, None]
    mapie = SplitConformalClassifier(
        clf,
        confidence_level=1 - alpha,
        conformity_score=score,
        prefit=True,
        random_state=RANDOM_STATE,
    )
    mapie.conformalize(rows[:n_cal], labels[:n_cal])
    _, sets = mapie.predict_set(
        rows[n_cal:], conformity_score_params={"include_last_label": include_last_label}
    )
    quantile = float(
        np.ravel(mapie._mapie_classifier.conformity_score_function_.quantiles_)[0]
    )
    return sets[:, :, 0], quantile


def main():
    rng = np.random.default_rng(20261225)
    cases = {}
    for name, n_cal, n_test, n_classes, alpha in (
        ("five_classes", 300, 200, 5, 0.1),
        ("ten_classes", 150, 100, 10, 0.2),
        ("small_alpha", 99, 50, 4, 0.05),
    ):
        probs = softmax(1.5 * rng.normal(size=(n_cal + n_test, n_classes)))
        labels = np.array([rng.choice(n_classes, p=row) for row in probs])
        lac, lac_q = mapie_sets(probs, labels, n_cal, alpha, "lac")
        case = {
            "alpha": alpha,
            "cal_probs": probs[:n_cal].tolist(),
            "cal_labels": labels[:n_cal].tolist(),
            "test_probs": probs[n_cal:].tolist(),
            "lac_sets": lac.tolist(),
            "lac_threshold": lac_q,
            "aps_cal_uniforms": np.random.RandomState(RANDOM_STATE)
            .uniform(size=n_cal)
            .tolist(),
            "aps_test_uniforms": np.random.RandomState(RANDOM_STATE)
            .uniform(size=n_test)
            .tolist(),
        }
        for option in (True, False, "randomized"):
            sets, quantile = mapie_sets(probs, labels, n_cal, alpha, "aps", option)
            case[f"aps_sets_include_last_{str(option).lower()}"] = sets.tolist()
            case["aps_threshold"] = quantile
        cases[name] = case
    fixture = {
        "generator": "scripts/generate_conformal_fixture.py",
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("mapie", "scikit-learn", "numpy")
        },
        "random_state": RANDOM_STATE,
        "cases": cases,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "conformal_peers.json"
    path.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {path}")
    for name, case in cases.items():
        sizes = {
            key: float(np.mean(np.sum(case[key], 1)))
            for key in case
            if key.endswith("sets") or "sets_" in key
        }
        print(name, case["lac_threshold"], case["aps_threshold"], sizes)


if __name__ == "__main__":
    main()
