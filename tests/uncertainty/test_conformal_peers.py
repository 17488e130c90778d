"""Conformal sets against MAPIE 1.x `SplitConformalClassifier` (prefit).

`tests/fixtures/conformal_peers.json` was recorded by
`scripts/generate_conformal_fixture.py` (versions in the fixture). LAC sets
and thresholds are compared end to end; for APS, MAPIE's uniforms
(`RandomState(random_state)`, restarted for calibration and for test rows)
are replayed through kerasx's score and set functions, since kerasx draws
its own from `default_rng(seed)`. Every comparison is exact (thresholds to
0, sets element for element).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from kerasx.uncertainty import conformal_sets
from kerasx.uncertainty.conformal import aps_scores, aps_sets, threshold

CASES = json.loads(
    (
        pathlib.Path(__file__).parents[1] / "fixtures" / "conformal_peers.json"
    ).read_text()
)["cases"]


def _arrays(case):
    return (
        np.array(case["cal_probs"]),
        np.array(case["cal_labels"]),
        np.array(case["test_probs"]),
        case["alpha"],
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_lac_equals_mapie(name):
    cal, labels, test, alpha = _arrays(CASES[name])
    rows = np.arange(labels.shape[0])
    assert threshold(1 - cal[rows, labels], alpha) == CASES[name]["lac_threshold"]
    sets = conformal_sets(cal, labels, test, alpha=alpha, method="lac")
    np.testing.assert_array_equal(sets, CASES[name]["lac_sets"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_aps_equals_mapie_with_its_uniforms(name):
    case = CASES[name]
    cal, labels, test, alpha = _arrays(case)
    cutoff = threshold(
        aps_scores(cal, labels, np.array(case["aps_cal_uniforms"])), alpha
    )
    assert cutoff == case["aps_threshold"]
    randomized = aps_sets(
        test, cutoff, np.array(case["aps_test_uniforms"]), include_last=True
    )
    np.testing.assert_array_equal(randomized, case["aps_sets_include_last_randomized"])
    last = aps_sets(test, cutoff, include_last=True)
    np.testing.assert_array_equal(last, case["aps_sets_include_last_true"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_aps_set_rule_is_mapies_include_last_false(name):
    # Same rule, except that MAPIE puts the top class into a set that would
    # be empty.
    case = CASES[name]
    _, _, test, _ = _arrays(case)
    sets = aps_sets(test, case["aps_threshold"])
    mapie = np.array(case["aps_sets_include_last_false"])
    empty = ~sets.any(axis=1)
    np.testing.assert_array_equal(sets[~empty], mapie[~empty])
    top = np.eye(test.shape[1], dtype=bool)[test[empty].argmax(axis=1)]
    np.testing.assert_array_equal(mapie[empty], top)
