"""Records baal's BALD and entropy scores on seeded MC sample stacks as a fixture.

Run in a virtual environment with baal (not kerasx's own):

    python -m venv /tmp/peers && /tmp/peers/bin/pip install torch baal
    /tmp/peers/bin/python scripts/generate_baal_fixture.py

Writes `tests/fixtures/baal_bald.json`. baal takes predictions as
`[n_rows, n_classes, n_iterations]`; the fixture stores the samples as kerasx
takes them, `(n_samples, n_rows, n_classes)`.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib

import numpy as np
from baal.active.heuristics import BALD, Entropy

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def case(rng, n_samples, n_rows, n_classes, spread):
    centre = rng.normal(size=(1, n_rows, n_classes)) * 2.0
    noise = rng.normal(size=(n_samples, n_rows, n_classes)) * spread
    samples = softmax(centre + noise)
    baal_layout = np.transpose(samples, (1, 2, 0))  # [rows, classes, iterations]
    return {
        "samples": samples.tolist(),
        "bald": BALD().compute_score(baal_layout).tolist(),
        "entropy": Entropy().compute_score(baal_layout).tolist(),
    }


def main():
    rng = np.random.default_rng(20261201)
    fixture = {
        "generator": "scripts/generate_baal_fixture.py",
        "versions": {
            name: importlib.metadata.version(name) for name in ("baal", "numpy")
        },
        "cases": {
            "ten_classes_low_disagreement": case(rng, 30, 12, 10, 0.3),
            "three_classes_high_disagreement": case(rng, 50, 8, 3, 3.0),
            "binary": case(rng, 20, 10, 2, 1.0),
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "baal_bald.json"
    path.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
