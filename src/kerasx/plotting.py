"""Plots for kerasx results (matplotlib, imported only when a plot is drawn).

`import kerasx.plotting` does not import matplotlib; each function imports it
on first use, so the rest of kerasx works without the `plot` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasx._learning_curves import plot_learning_curves
from kerasx._lr_finder_result import plot_lr_vs_loss

__all__ = ["plot_learning_curves", "plot_lr_vs_loss", "reliability_diagram"]


def _axes(ax: Any) -> Any:
    """Returns `ax`, or the current matplotlib Axes when `ax` is None."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def reliability_diagram(
    y_true,
    probs,
    *,
    n_bins: int = 15,
    ax: Any = None,
    title: str | None = "Reliability diagram",
) -> Any:
    """Plots accuracy against confidence per confidence bin.

    The top-1 confidences `max_c p_c` are split into `n_bins` equal-width bins
    on `[0, 1]` (bin `b` is `(b / n_bins, (b + 1) / n_bins]`). Each non-empty
    bin is drawn as a bar of height `accuracy(B_b)`, with the gap to the mean
    confidence `confidence(B_b)` shaded; a perfectly calibrated model follows
    the diagonal. The legend gives the expected calibration error
    `sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|`.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`.
        probs: Probabilities `(n, n_classes)` (e.g. `mc_predict(...).mean`),
            or `(n,)` positive-class probabilities of a binary problem.
        n_bins: Number of confidence bins.
        ax: Matplotlib Axes to draw on. Default: the current Axes.
        title: Axes title, or None for none.

    Returns:
        The matplotlib Axes.

    Example:

    ```python
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = reliability_diagram([0, 1, 1], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    >>> ax.get_xlabel()
    'Confidence'

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017,
        figure 1.
    """
    from kerasx._calibration import expected_calibration_error, reliability_bins

    edges, accuracy, confidence, counts = reliability_bins(y_true, probs, n_bins)
    ece = expected_calibration_error(y_true, probs, n_bins)
    ax = _axes(ax)
    filled = counts > 0
    lefts = edges[:-1][filled]
    width = 1.0 / n_bins
    ax.bar(
        lefts,
        accuracy[filled],
        width=width,
        align="edge",
        edgecolor="black",
        color="tab:blue",
        label=f"Accuracy (ECE = {ece:.4f})",
    )
    gap_low = np.minimum(accuracy[filled], confidence[filled])
    ax.bar(
        lefts,
        np.abs(confidence[filled] - accuracy[filled]),
        bottom=gap_low,
        width=width,
        align="edge",
        color="tab:red",
        alpha=0.3,
        hatch="//",
        label="Gap to confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="Perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Confidence")
    ax.set_ylabel("Accuracy")
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="upper left")
    return ax
