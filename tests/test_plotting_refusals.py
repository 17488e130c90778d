"""plot_lr_vs_loss refuses what is not an LRFinderResult, before drawing."""

from __future__ import annotations

import numpy as np
import pytest

from kerasx.lr_finder import LRFinderResult
from kerasx.plotting import plot_lr_vs_loss

EXPECTED = (
    r"Invalid value received for argument `result`\. Expected a "
    r"kerasx\.lr_finder\.LRFinderResult \(from `find_learning_rate`, or "
    r"`LRFinderResult\.from_losses\(rates, losses\)` for recorded rates and "
    r"losses\)\. "
)


@pytest.mark.parametrize(
    ("result", "shown"),
    [
        (([0.1, 0.2], [1.0, 0.5]), "a tuple"),
        (None, "a NoneType"),
        ({"rates": [0.1], "losses": [1.0]}, "a dict"),
    ],
)
def test_non_results_are_refused(result, shown):
    with pytest.raises(ValueError, match=rf"^{EXPECTED}Received: result=<{shown}>$"):
        plot_lr_vs_loss(result)


def test_a_pair_converted_with_from_losses_is_drawn():
    plt = pytest.importorskip("matplotlib.pyplot", reason="matplotlib not installed")
    plt.switch_backend("Agg")
    try:
        result = LRFinderResult.from_losses([0.1, 0.2], [1.0, 0.5], smoothing=0.0)
        ax = plot_lr_vs_loss(result)
        np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0.1, 0.2])
        np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [1.0, 0.5])
    finally:
        plt.close("all")
