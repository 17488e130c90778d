"""`ood_metrics` against scikit-learn, on `tests/fixtures/ood_peers.json`.

Recorded by `scripts/generate_ood_fixture.py` (versions in the fixture): the
same float64 quantities, so the tolerance is 1e-12 absolute; the cases
include heavily tied scores and ties across the two groups.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from kerasx.uncertainty import ood_metrics

FIXTURE = json.loads(
    (pathlib.Path(__file__).parents[1] / "fixtures" / "ood_peers.json").read_text()
)
METRICS = ("auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr")


@pytest.mark.parametrize("case", sorted(FIXTURE["cases"]))
def test_equal_to_sklearn(case):
    recorded = FIXTURE["cases"][case]
    metrics = ood_metrics(recorded["scores_in"], recorded["scores_out"])
    assert sorted(metrics) == sorted(METRICS)
    for name in METRICS:
        assert metrics[name] == pytest.approx(recorded[name], abs=1e-12), name
