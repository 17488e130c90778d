"""Learning curves of a Keras `History`: training and validation metrics per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _history_dict(history_or_dict: Any) -> Mapping[str, Sequence[float]]:
    history = getattr(history_or_dict, "history", history_or_dict)
    if not isinstance(history, Mapping):
        raise TypeError(
            "Invalid value received for argument `history_or_dict`. Expected a "
            "`keras.callbacks.History` or a dict of per-epoch metric lists. "
            f"Received: history_or_dict={history_or_dict!r}"
        )
    return history


def plot_learning_curves(
    history_or_dict: Any,
    ax: Any = None,
    metrics: Sequence[str] = ("loss", "accuracy"),
    title: str | None = None,
) -> Any:
    """Plots training (solid) and validation (dashed) metrics against the epoch.

    Each name in `metrics` is looked up in the history as is (training) and
    with a `val_` prefix (validation, drawn when present), in the style of
    `pd.DataFrame(history.history).plot()` from Hands-On ML, but with epochs
    counted from 1 and validation curves matched to their training curve by
    colour.

    Args:
        history_or_dict: The `keras.callbacks.History` returned by `fit`, or
            its `.history` dict (`{"loss": [...], "val_loss": [...], ...}`).
        ax: A matplotlib `Axes` to draw on; a new figure is made when `None`.
        metrics: Metric names to draw; each must be in the history.
        title: Optional axes title.

    Returns:
        The matplotlib `Axes` drawn on.

    Raises:
        ValueError: if `metrics` is empty, a metric is missing from the
            history, or the history has no epochs.

    Example:

    ```python
    >>> ax = plot_learning_curves(
    ...     {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, metrics=["loss"])
    >>> [line.get_label() for line in ax.get_lines()]
    ['loss', 'val_loss']

    ```
    """
    history = _history_dict(history_or_dict)
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError(
            "Invalid value received for argument `metrics`. Expected at least one "
            "metric name. Received: metrics=()"
        )
    missing = [name for name in metrics if name not in history]
    if missing:
        raise ValueError(
            f"Invalid value received for argument `metrics`. {missing} not in the "
            f"history, which has {sorted(history)}. Received: metrics={list(metrics)}"
        )
    if not any(len(history[name]) for name in metrics):
        raise ValueError("The history is empty: `fit` ran no epoch.")

    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, name in enumerate(metrics):
        color = colors[index % len(colors)]
        values = list(history[name])
        ax.plot(range(1, len(values) + 1), values, "-", color=color, label=name)
        val_name = f"val_{name}"
        if val_name in history:
            val_values = list(history[val_name])
            epochs = range(1, len(val_values) + 1)
            ax.plot(epochs, val_values, "--", color=color, label=val_name)
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title is not None:
        ax.set_title(title)
    return ax
