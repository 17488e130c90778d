"""`reliability_diagram` with a dict of predictions: one labelled curve each."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from kerasx.plotting import reliability_diagram
from kerasx.uncertainty import expected_calibration_error

LABELS = np.array([0, 1, 1, 1])
BEFORE = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.35, 0.65]])
AFTER = np.array([[0.7, 0.3], [0.4, 0.6], [0.55, 0.45], [0.45, 0.55]])


@pytest.fixture(autouse=True)
def _agg_backend():
    plt.switch_backend("Agg")
    yield
    plt.close("all")


def test_dict_draws_one_labelled_curve_per_entry():
    _, ax = plt.subplots()
    probs = {"before": BEFORE, "after temperature": AFTER}
    returned = reliability_diagram(LABELS, probs, n_bins=4, ax=ax, title="t")
    assert returned is ax
    assert not ax.containers  # Curves, not bars.
    expected = [
        f"{name} (ECE = {expected_calibration_error(LABELS, p, 4):.4f})"
        for name, p in probs.items()
    ]
    # By hand: before 0.0375 (see test_plotting.py); after: confidences 0.7
    # (right), 0.6 (right), 0.55 (wrong), 0.55 (right) all in (0.5, 0.75].
    assert expected == ["before (ECE = 0.0375)", "after temperature (ECE = 0.1500)"]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == [*expected, "Perfect calibration"]
    before_line, after_line, diagonal = ax.get_lines()
    assert before_line.get_label() == expected[0]
    np.testing.assert_allclose(before_line.get_xdata(), [0.65, 0.9])
    np.testing.assert_allclose(before_line.get_ydata(), [2 / 3, 1.0])
    np.testing.assert_allclose(after_line.get_xdata(), [0.6])
    np.testing.assert_allclose(after_line.get_ydata(), [0.75])
    assert diagonal.get_linestyle() == "--"
    assert ax.get_xlabel() == "Confidence" and ax.get_title() == "t"


def test_dict_of_one_entry_and_binary_probabilities():
    ax = reliability_diagram([1, 0], {"model": [0.8, 0.3]}, n_bins=2, title=None)
    assert ax is plt.gca()
    ece = expected_calibration_error([1, 0], [0.8, 0.3], 2)
    assert ax.get_legend().get_texts()[0].get_text() == f"model (ECE = {ece:.4f})"
    assert ax.get_title() == ""


def test_empty_dict_is_refused():
    with pytest.raises(
        ValueError,
        match=r"argument `probs`. Expected an array of probabilities or a "
        r"non-empty dict of them. Received: probs=\{\}",
    ):
        reliability_diagram(LABELS, {})


def test_invalid_entry_is_refused_before_drawing():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"argument `probs`. Expected finite"):
        reliability_diagram(
            LABELS, {"ok": BEFORE, "bad": BEFORE * 2.0}, n_bins=4, ax=ax
        )
    assert not ax.get_lines()
