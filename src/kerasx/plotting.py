"""Plots for kerasx results (matplotlib, imported only when a plot is drawn).

`import kerasx.plotting` does not import matplotlib; each function imports it
on first use, so the rest of kerasx works without the `plot` extra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kerasx import _checks

if TYPE_CHECKING:  # pragma: no cover
    from kerasx.lr_finder import LRFinderResult

__all__ = [
    "plot_activation_stats",
    "plot_gradient_norms",
    "plot_learning_curves",
    "plot_lr_vs_loss",
    "reliability_diagram",
]


def _axes(ax: Any) -> Any:
    """Returns `ax`, or the current matplotlib Axes when `ax` is None."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


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
        TypeError: If `history_or_dict` is neither a `History` nor a dict.
        ValueError: If `metrics` is empty, a metric is missing from the
            history (the message lists the history's keys), or the history
            has no epochs.

    Example:

    ```python
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # no window: draw into memory
    >>> import matplotlib.pyplot as plt
    >>> from kerasx.plotting import plot_learning_curves
    >>> history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
    ...            "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.45, 0.6, 0.65]}
    >>> ax = plot_learning_curves(history)  # or the History that `fit` returns
    >>> [(line.get_label(), line.get_linestyle()) for line in ax.get_lines()]
    [('loss', '-'), ('val_loss', '--'), ('accuracy', '-'), ('val_accuracy', '--')]
    >>> ax.get_lines()[0].get_xdata().tolist()  # epochs counted from 1
    [1, 2, 3]
    >>> plt.close(ax.figure)

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


def plot_lr_vs_loss(result: LRFinderResult, ax=None):
    """Plots loss against learning rate (log x axis) with the suggestions marked.

    The raw and smoothed losses are drawn over the whole sweep; the points the
    suggestions skip (fastai's first `num_steps // 10`, the last 5, and any
    after the first non-finite smoothed loss; see `kerasx.lr_finder.suggest`)
    are shaded grey.

    Args:
        result: The `LRFinderResult` of `find_learning_rate`.
        ax: A matplotlib Axes to draw on; a new figure's Axes by default.

    Returns:
        The matplotlib Axes.

    Raises:
        ValueError: If `result` is not a `kerasx.lr_finder.LRFinderResult`.

    Example:

    ```python
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # no window: draw into memory
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from kerasx.lr_finder import LRFinderResult
    >>> from kerasx.plotting import plot_lr_vs_loss
    >>> rates = np.geomspace(1e-4, 1.0, 50)
    >>> losses = (np.log10(rates) + 2) ** 2 + 1  # lowest at a rate of 1e-2
    >>> result = LRFinderResult.from_losses(rates, losses)
    >>> ax = plot_lr_vs_loss(result)  # or the result of `find_learning_rate`
    >>> ax.get_xscale()
    'log'
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['loss', 'smoothed loss', 'skipped by the rules', 'valley: 3.56e-03',
     'steep: 2.56e-04', 'minimum: 7.20e-03', 'slide: 2.56e-04']
    >>> plt.close(ax.figure)

    ```
    """
    # Imported here: `kerasx.lr_finder` imports this module.
    from kerasx.lr_finder import LRFinderResult

    if not isinstance(result, LRFinderResult):
        raise _checks.invalid_described(
            "result",
            "a kerasx.lr_finder.LRFinderResult (from `find_learning_rate`, or "
            "`LRFinderResult.from_losses(rates, losses)` for recorded rates and "
            "losses)",
            f"a {type(result).__name__}",
        )
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    rates = np.asarray(result.rates)
    ax.plot(rates, result.losses, alpha=0.35, label="loss")
    ax.plot(rates, result.smoothed_losses, label="smoothed loss")
    start, stop = result.suggestion_range
    skipped = {"color": "0.5", "alpha": 0.15, "linewidth": 0}
    if len(rates) and start > 0:
        last_skipped = rates[min(start, len(rates) - 1)]
        ax.axvspan(rates[0], last_skipped, label="skipped by the rules", **skipped)
    if len(rates) and stop < len(rates):
        first_skipped = rates[max(stop - 1, 0)]
        label = None if start > 0 else "skipped by the rules"
        ax.axvspan(first_skipped, rates[-1], label=label, **skipped)
    finite = np.isfinite(result.smoothed_losses)
    for (name, rate), marker in zip(result.suggestions.items(), "ovs^", strict=True):
        if math.isfinite(rate) and finite.any():
            loss = np.interp(
                np.log(rate),
                np.log(rates[finite]),
                result.smoothed_losses[finite],
            )
            ax.plot([rate], [loss], marker, markersize=8, label=f"{name}: {rate:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    return ax


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

    To compare several predictions of the same labels (before and after
    temperature scaling, say), pass `probs` as a dict from a legend label to
    probabilities: each entry is drawn as one curve through the points
    `(confidence(B_b), accuracy(B_b))` of its non-empty bins, labelled
    `"<label> (ECE = <ece>)"` with the ECE to 4 decimals.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`.
        probs: Probabilities `(n, n_classes)` (e.g. `mc_predict(...).mean`),
            or `(n,)` positive-class probabilities of a binary problem; or a
            non-empty dict mapping a label to such probabilities, one curve
            each.
        n_bins: Number of confidence bins.
        ax: Matplotlib Axes to draw on. Default: the current Axes.
        title: Axes title, or None for none.

    Returns:
        The matplotlib Axes.

    Raises:
        ValueError: If `n_bins` is not an integer >= 1; if `y_true` is not
            one integer label in `[0, n_classes)` (or one one-hot row) per row
            of `probs`; if `probs` (or an entry of the dict) is not a
            non-empty array of shape `(n,)` or `(n, n_classes)` of finite
            probabilities whose rows sum to 1; if the dict is empty. Every
            entry is checked before anything is drawn.

    Example:

    ```python
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # no window: draw into memory
    >>> import matplotlib.pyplot as plt
    >>> from kerasx.plotting import reliability_diagram
    >>> labels = [0, 1, 1]
    >>> before = [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]
    >>> ax = reliability_diagram(labels, before)
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['Perfect calibration', 'Accuracy (ECE = 0.3333)', 'Gap to confidence']
    >>> plt.close(ax.figure)
    >>> after = [[0.7, 0.3], [0.4, 0.6], [0.55, 0.45]]
    >>> ax = reliability_diagram(labels, {"before": before, "after": after}, n_bins=5)
    >>> [text.get_text() for text in ax.get_legend().get_texts()][:2]
    ['before (ECE = 0.3333)', 'after (ECE = 0.1500)']
    >>> plt.close(ax.figure)

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017,
        figure 1.
    """
    from kerasx.uncertainty.calibration import (
        expected_calibration_error,
        reliability_bins,
    )

    if isinstance(probs, Mapping):
        return _reliability_curves(y_true, probs, n_bins=n_bins, ax=ax, title=title)
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
    _finish_reliability_axes(ax, title)
    return ax


def _reliability_curves(y_true, probs_by_label, *, n_bins, ax, title):
    """One accuracy-against-confidence curve per entry of `probs_by_label`."""
    from kerasx.uncertainty.calibration import (
        expected_calibration_error,
        reliability_bins,
    )

    if not probs_by_label:
        raise _checks.invalid(
            "probs", "an array of probabilities or a non-empty dict of them", {}
        )
    # Every entry is checked before anything is drawn on the axes.
    curves = []
    for label, probs in probs_by_label.items():
        _, accuracy, confidence, counts = reliability_bins(y_true, probs, n_bins)
        ece = expected_calibration_error(y_true, probs, n_bins)
        filled = counts > 0
        curves.append(
            (f"{label} (ECE = {ece:.4f})", confidence[filled], accuracy[filled])
        )
    ax = _axes(ax)
    for label, confidence, accuracy in curves:
        ax.plot(confidence, accuracy, marker="o", label=label)
    _finish_reliability_axes(ax, title)
    return ax


def _finish_reliability_axes(ax, title):
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="Perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Confidence")
    ax.set_ylabel("Accuracy")
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="upper left")


def _depth_colors(count: int) -> list:
    """Colours from dark (first layer) to light (last layer), viridis."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(count - 1, 1) * 0.9) for i in range(count)]


def _depth_legend(ax, names: Sequence[str], colors: list) -> None:
    """A legend for a few layers, a colour bar from first to last for many."""
    if len(names) <= 10:
        ax.legend(fontsize="small", ncols=2 if len(names) > 5 else 1)
        return
    import matplotlib
    import matplotlib.pyplot as plt

    cmap = matplotlib.colors.ListedColormap(colors)
    norm = matplotlib.colors.Normalize(1, len(names))
    bar = plt.colorbar(matplotlib.cm.ScalarMappable(norm, cmap), ax=ax)
    bar.set_label(f"layer ({names[0]} ... {names[-1]})")


def plot_gradient_norms(
    history_or_callback: Any,
    ax: Any = None,
    *,
    layers: Sequence[str] | None = None,
    global_norm: bool = True,
    title: str | None = None,
) -> Any:
    """Plots the per-layer gradient norms of `GradientStats` against the step.

    One line per layer, coloured from dark (first layer) to light (last), on a
    log scale, and the global norm as a dashed black line: vanishing gradients
    show as dark lines far below the light ones, exploding gradients the other
    way round.

    Args:
        history_or_callback: A `kerasx.callbacks.GradientStats` (its
            `.history`, against its recorded epochs or batches), or the
            `keras.callbacks.History` of a `fit` it ran in, or its `.history`
            dict (against the epoch, counted from 1).
        ax: A matplotlib Axes to draw on; a new figure's Axes by default.
        layers: The layers to draw (their `grad_norm/<layer>` keys); None
            draws every layer found.
        global_norm: Whether to draw `grad_norm/global` too.
        title: Optional axes title.

    Returns:
        The matplotlib Axes.

    Raises:
        ValueError: If `history_or_callback` is not a `GradientStats`, a
            `History` or a dict, or holds no `grad_norm/<layer>` key (nor
            `grad_norm/global` to draw); if `layers` is not None or a list of
            logged layer names; if `global_norm` is not a bool.

    Example:

    ```python
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # no window: draw into memory
    >>> import matplotlib.pyplot as plt
    >>> from kerasx.plotting import plot_gradient_norms
    >>> history = {"grad_norm/global": [1.0, 0.5], "grad_norm/dense": [0.1, 0.2],
    ...            "grad_norm/out": [0.9, 0.4]}  # e.g. `fit(...).history`
    >>> ax = plot_gradient_norms(history)
    >>> [line.get_label() for line in ax.get_lines()]
    ['dense', 'out', 'global']
    >>> ax.get_yscale(), ax.get_xlabel()
    ('log', 'epoch')
    >>> plt.close(ax.figure)

    ```
    """
    from kerasx.callbacks import GradientStats

    if isinstance(history_or_callback, GradientStats):
        history = history_or_callback.history
        steps = np.asarray(history_or_callback.steps)
        xlabel = history_or_callback.per
    else:
        history = getattr(history_or_callback, "history", history_or_callback)
        if not isinstance(history, Mapping):
            raise _checks.invalid_described(
                "history_or_callback",
                "a kerasx.callbacks.GradientStats, or the keras.callbacks.History "
                "(or its `.history` dict) of a `fit` it ran in",
                f"a {type(history_or_callback).__name__}",
            )
        steps, xlabel = None, "epoch"
    found = [
        key.split("/", 1)[1]
        for key in history
        if key.startswith("grad_norm/") and key.count("/") == 1
    ]
    found = [name for name in found if name != "global"]
    if layers is None:
        names = found
    else:
        if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
            raise _checks.invalid("layers", "None or a list of layer names", layers)
        missing = [name for name in layers if name not in found]
        if missing:
            raise _checks.invalid(
                "layers",
                f"names of logged layers ({found}); not found: {missing}",
                layers,
            )
        names = list(layers)
    _checks.boolean("global_norm", global_norm)
    if not names and not (global_norm and "grad_norm/global" in history):
        raise _checks.invalid_described(
            "history_or_callback",
            "a history with `grad_norm/<layer>` keys (from GradientStats)",
            f"keys {sorted(history)}",
        )
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))

    def x_of(values):
        return steps if steps is not None else np.arange(1, len(values) + 1)

    colors = _depth_colors(len(names))
    for name, color in zip(names, colors, strict=True):
        values = np.asarray(history[f"grad_norm/{name}"], dtype=float)
        ax.plot(x_of(values), values, color=color, label=name)
    if global_norm and "grad_norm/global" in history:
        values = np.asarray(history["grad_norm/global"], dtype=float)
        ax.plot(x_of(values), values, "--", color="black", label="global")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("gradient L2 norm")
    ax.grid(True, alpha=0.3)
    if names:
        _depth_legend(ax, names, colors)
    if title is not None:
        ax.set_title(title)
    return ax


ACTIVATION_PLOT_KINDS = ("hist", "stats")


def plot_activation_stats(
    stats: Any,
    *,
    kind: str = "hist",
    layers: Sequence[str] | None = None,
    ncols: int = 4,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Draws `ActivationStats` records: fastai's "colorful dimension", or the curves.

    `kind="hist"` draws one image per layer: column `t` is the histogram of
    `|a|` at recorded step `t`, bin `b` its row (origin at the bottom, `|a|`
    on the y axis), and the colour is `log1p(count)`, as fastai's `color_dim`
    draws `torch.stack(hists).t().float().log1p()`. A healthy layer shows a
    smooth band; a bright bottom row over dark rows is a layer whose
    activations collapse to zero (dead or saturated-at-zero units), a band
    that rises and falls is a training that explodes and collapses.
    `kind="stats"` draws three panels, the mean, standard deviation and
    near-zero fraction against the step, one line per layer coloured from
    dark (first layer) to light (last).

    Args:
        stats: A `kerasx.callbacks.ActivationStats` that has recorded.
        kind: `"hist"` or `"stats"`.
        layers: The layers to draw; None draws every watched layer.
        ncols: Images per row with `kind="hist"`.
        figsize: The figure size; by default 2.6 x 2.2 inches per image, or
            12 x 3.5 for the curves.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: If `stats` is not an `ActivationStats`, or has recorded
            no step; if `kind` is not `"hist"` or `"stats"`, `ncols` not an
            integer >= 1, or `layers` not None or a non-empty list of watched
            layer names.

    Example:

    ```python
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # no window: draw into memory
    >>> import matplotlib.pyplot as plt
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.callbacks import ActivationStats
    >>> from kerasx.plotting import plot_activation_stats
    >>> model = keras.Sequential([keras.Input((2,)),
    ...     keras.layers.Dense(3, activation="relu", name="hidden")])
    >>> model.compile("sgd", "mse")
    >>> x = np.ones((4, 2), "float32")
    >>> stats = ActivationStats(x, per="batch")
    >>> _ = model.fit(x, np.zeros((4, 3)), batch_size=2, callbacks=[stats], verbose=0)
    >>> figure = plot_activation_stats(stats)
    >>> [ax.get_title() for ax in figure.axes]  # one image per layer
    ['hidden']
    >>> figure.axes[0].get_images()[0].get_array().shape  # bins x steps
    (40, 2)
    >>> plt.close(figure)
    >>> figure = plot_activation_stats(stats, kind="stats")
    >>> [ax.get_title() for ax in figure.axes]
    ['mean', 'std', 'fraction near zero']
    >>> plt.close(figure)

    ```

    Reference:
        fastai `ActivationStats.color_dim` and the 2022 course's `color_dim`
        (`show_image(get_hist(h), origin="lower")`).
    """
    from kerasx.callbacks import ActivationStats

    if not isinstance(stats, ActivationStats):
        raise _checks.invalid_described(
            "stats", "a kerasx.callbacks.ActivationStats", f"a {type(stats).__name__}"
        )
    _checks.choice("kind", kind, ACTIVATION_PLOT_KINDS)
    ncols = _checks.integer("ncols", ncols, minimum=1)
    if not stats.steps:
        raise _checks.invalid_described(
            "stats",
            "an ActivationStats that has recorded (used in a `fit`)",
            "no recorded step",
        )
    if layers is None:
        names = list(stats.layer_names)
    else:
        if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
            raise _checks.invalid("layers", "None or a list of layer names", layers)
        missing = [name for name in layers if name not in stats.layer_names]
        if missing or not layers:
            raise _checks.invalid(
                "layers",
                f"a non-empty list of watched layers ({stats.layer_names}); "
                f"not found: {missing}",
                layers,
            )
        names = list(layers)
    import matplotlib.pyplot as plt

    steps = np.asarray(stats.steps)
    if kind == "stats":
        figure, axes = plt.subplots(1, 3, figsize=figsize or (12, 3.5))
        colors = _depth_colors(len(names))
        panels = (
            ("act_mean", "mean"),
            ("act_std", "std"),
            ("act_near_zero", "fraction near zero"),
        )
        for ax, (prefix, label) in zip(axes, panels, strict=True):
            for name, color in zip(names, colors, strict=True):
                ax.plot(
                    steps, stats.history[f"{prefix}/{name}"], color=color, label=name
                )
            ax.set_xlabel(stats.per)
            ax.set_title(label)
            ax.grid(True, alpha=0.3)
        _depth_legend(axes[-1], names, colors)
        figure.tight_layout()
        return figure
    nrows = math.ceil(len(names) / ncols)
    columns = min(ncols, len(names))
    figure, axes = plt.subplots(
        nrows,
        columns,
        figsize=figsize or (2.6 * columns, 2.2 * nrows),
        squeeze=False,
    )
    low, high = float(stats.bin_edges[0]), float(stats.bin_edges[-1])
    half = 0.5 if len(steps) == 1 else 0.0
    for index, ax in enumerate(axes.flat):
        if index >= len(names):
            ax.set_axis_off()
            continue
        name = names[index]
        image = np.log1p(np.stack(stats.histograms[name]).T.astype(float))
        ax.imshow(
            image,
            origin="lower",
            aspect="auto",
            extent=(steps[0] - half, steps[-1] + half, low, high),
            interpolation="nearest",
        )
        ax.set_title(name, fontsize="small")
        ax.tick_params(labelsize="x-small")
        if index % columns == 0:
            ax.set_ylabel("|activation|", fontsize="small")
        if index >= len(names) - columns:
            ax.set_xlabel(stats.per, fontsize="small")
    figure.tight_layout()
    return figure
