"""Records scikit-learn's and netcal's temperature scaling as a fixture.

Run in a virtual environment with the peers (not kerasx's own):

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install "scikit-learn>=1.8" netcal torch==2.13.0
    /work/peers-venv/bin/python scripts/generate_temperature_fixture.py

Writes `tests/fixtures/temperature_peers.json`: seeded validation
probabilities (or logits) and labels, a test set, and each peer's fitted
temperature and calibrated test probabilities:

- scikit-learn's `CalibratedClassifierCV(FrozenEstimator(clf),
  method="temperature")` on a classifier returning the stored probabilities
  (or, for logits, a `decision_function`); its temperature is `1 / beta_`.
- netcal's `TemperatureScaling()` (MLE); its `temperature` is the factor
  multiplying the logits, so the temperature is `1 / weights`.

`tests/uncertainty/test_temperature_peers.py` compares kerasx with them.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib

import numpy as np
from netcal.scaling import TemperatureScaling
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"


class _FixedOutputs(ClassifierMixin, BaseEstimator):
    """A "fitted" classifier whose inputs are row indices into fixed outputs."""

    def __init__(self, outputs=None, n_classes=2):
        self.outputs = outputs
        self.n_classes = n_classes

    def fit(self, x, y):
        self.classes_ = np.arange(self.n_classes)
        return self

    def _rows(self, x):
        return self.outputs[np.asarray(x)[:, 0].astype(int)]

    def predict(self, x):
        return np.zeros(len(x), dtype=int)


class FixedProbabilities(_FixedOutputs):
    """Stored probabilities, through `predict_proba`."""

    def predict_proba(self, x):
        return self._rows(x)


class FixedDecisions(_FixedOutputs):
    """Stored logits, through `decision_function` (and no `predict_proba`)."""

    def decision_function(self, x):
        return self._rows(x)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sklearn_peer(val, y_val, test, logits, n_classes):
    outputs = np.concatenate([val, test])
    kind = FixedDecisions if logits else FixedProbabilities
    clf = kind(outputs, n_classes=n_classes).fit(None, None)
    rows = np.arange(len(outputs))[:, None]
    calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method="temperature")
    calibrated.fit(rows[: len(val)], y_val)
    beta = float(calibrated.calibrated_classifiers_[0].calibrators[0].beta_)
    return 1.0 / beta, calibrated.predict_proba(rows[len(val) :])


def netcal_peer(val, y_val, test):
    scaler = TemperatureScaling()
    scaler.fit(val, y_val)
    factor = float(np.asarray(scaler.temperature).reshape(-1)[0])
    return 1.0 / factor, np.asarray(scaler.transform(test), dtype=np.float64)


def multiclass(rng, n, n_classes, scale, true_temperature):
    logits = scale * rng.normal(size=(n, n_classes))
    truth = softmax(logits / true_temperature)
    labels = np.array([rng.choice(n_classes, p=row) for row in truth])
    return logits, labels


def main():
    rng = np.random.default_rng(20261224)
    cases = {}
    # Overconfident 5-class model (true T = 2.5) and underconfident 3-class (T = 0.6).
    for name, n_classes, scale, true_temperature in (
        ("overconfident", 5, 3.0, 2.5),
        ("underconfident", 3, 1.0, 0.6),
    ):
        logits, labels = multiclass(rng, 700, n_classes, scale, true_temperature)
        val, test = softmax(logits[:500]), softmax(logits[500:])
        sk_t, sk_test = sklearn_peer(val, labels[:500], test, False, n_classes)
        nc_t, nc_test = netcal_peer(val, labels[:500], test)
        cases[name] = {
            "val_probs": val.tolist(),
            "val_labels": labels[:500].tolist(),
            "test_probs": test.tolist(),
            "sklearn_temperature": sk_t,
            "sklearn_test_probs": sk_test.tolist(),
            "netcal_temperature": nc_t,
            "netcal_test_probs": nc_test.tolist(),
        }
        # The same problem given as logits (sklearn: a decision_function).
        sk_t, sk_test = sklearn_peer(
            logits[:500], labels[:500], logits[500:], True, n_classes
        )
        cases[name + "_logits"] = {
            "val_logits": logits[:500].tolist(),
            "val_labels": labels[:500].tolist(),
            "test_logits": logits[500:].tolist(),
            "sklearn_temperature": sk_t,
            "sklearn_test_probs": sk_test.tolist(),
        }
    # Binary: positive-class probabilities (n,), and 1-D decision values.
    z = 2.5 * rng.normal(size=600)
    y = (rng.uniform(size=600) < 1.0 / (1.0 + np.exp(-z / 1.8))).astype(np.int64)
    p = 1.0 / (1.0 + np.exp(-z))
    two = np.stack([1.0 - p, p], axis=1)
    sk_t, sk_test = sklearn_peer(two[:400], y[:400], two[400:], False, 2)
    nc_t, nc_test = netcal_peer(p[:400], y[:400], p[400:])
    sk_dt, sk_dtest = sklearn_peer(z[:400], y[:400], z[400:], True, 2)
    cases["binary"] = {
        "val_p": p[:400].tolist(),
        "val_logit": z[:400].tolist(),
        "val_labels": y[:400].tolist(),
        "test_p": p[400:].tolist(),
        "test_logit": z[400:].tolist(),
        "sklearn_temperature": sk_t,
        "sklearn_test_probs": sk_test.tolist(),
        "netcal_temperature": nc_t,
        "netcal_test_p": nc_test.reshape(-1).tolist(),
        "sklearn_decision_temperature": sk_dt,
        "sklearn_decision_test_probs": sk_dtest.tolist(),
    }
    fixture = {
        "generator": "scripts/generate_temperature_fixture.py",
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("scikit-learn", "netcal", "torch", "numpy", "scipy")
        },
        "cases": cases,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "temperature_peers.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path}")
    for name, case in cases.items():
        print(name, {k: v for k, v in case.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
