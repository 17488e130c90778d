"""Tests for `kerasx.plotting`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from kerasx.plotting import reliability_diagram


@pytest.fixture(autouse=True)
def _agg_backend():
    plt.switch_backend("Agg")
    yield
    plt.close("all")


def test_reliability_diagram_bars_are_bin_accuracies():
    # Confidences 0.9 (right), 0.7 (right), 0.6 (wrong) and 0.65 (right), 4 bins:
    # (0.5, 0.75] holds 3 rows, accuracy 2/3, confidence 0.65; (0.75, 1] one row.
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.35, 0.65]])
    labels = np.array([0, 1, 1, 1])
    _, ax = plt.subplots()
    returned = reliability_diagram(labels, probs, n_bins=4, ax=ax, title="t")
    assert returned is ax
    accuracy_bars, gap_bars = ax.containers
    np.testing.assert_allclose([b.get_x() for b in accuracy_bars], [0.5, 0.75])
    np.testing.assert_allclose([b.get_height() for b in accuracy_bars], [2 / 3, 1.0])
    np.testing.assert_allclose([b.get_width() for b in accuracy_bars], [0.25, 0.25])
    np.testing.assert_allclose(
        [b.get_height() for b in gap_bars], [2 / 3 - 0.65, 0.1], atol=1e-12
    )
    np.testing.assert_allclose([b.get_y() for b in gap_bars], [0.65, 0.9])
    # ECE = 3/4 * |2/3 - 0.65| + 1/4 * 0.1 = 0.0375.
    labels_text = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Accuracy (ECE = 0.0375)" in labels_text
    assert ax.get_title() == "t"


def test_reliability_diagram_uses_current_axes_by_default():
    ax = reliability_diagram([0], [[0.8, 0.2]], title=None)
    assert ax is plt.gca()
    assert ax.get_title() == ""


def test_reliability_diagram_invalid_n_bins():
    with pytest.raises(ValueError, match=r"argument `n_bins`. Expected an integer"):
        reliability_diagram([0], [[0.8, 0.2]], n_bins=0)
