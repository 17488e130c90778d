"""The statistics behind `MCResult`, and the one probability check of kerasx.

`mc_predict` reduces its samples in the compiled graph and merges the per-call
statistics here in float64; `summarize` computes the same statistics from a
stack of samples; the calibration metrics validate their inputs with the same
`probability_problem` and floor logarithms at the same `LOG_FLOOR`.
"""

from __future__ import annotations

import numpy as np

from kerasx import _checks

#: How far probabilities may leave [0, 1], and row sums leave 1 (float32
#: softmax outputs are off by a few 1e-7; logits are off by far more).
PROBABILITY_TOLERANCE = 1e-3

#: Probabilities are floored here before a logarithm: the float64 machine
#: epsilon, as `sklearn.metrics.log_loss` clips. A confident mistake then costs
#: `-log(eps) = 36.04` nats instead of infinity; in an entropy the floor changes
#: nothing (`0 * log(floor) = 0`, and `p log p` differs by < 1e-14 below it).
LOG_FLOOR = float(np.finfo(np.float64).eps)


def _row_lengths(value):
    """The distinct lengths of the rows of a nested sequence, or None."""
    try:
        return sorted({len(row) for row in value})
    except TypeError:
        return None


def numeric_array(name, value, expected):
    """`value` as a NumPy array of booleans, integers or floats.

    NumPy's own errors for ragged or non-numeric input ("inhomogeneous
    shape", "could not convert string") do not say which argument is wrong,
    and a complex array cast to float silently loses its imaginary part.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        lengths = _row_lengths(value)
        if lengths is not None and len(lengths) > 1:
            description = f"ragged rows of lengths {lengths}"
        else:
            description = f"a {type(value).__name__} NumPy cannot convert"
        raise _checks.invalid_described(name, expected, description) from None
    if array.dtype.kind not in "biuf":
        raise _checks.invalid_described(name, expected, f"dtype {array.dtype}")
    return array


def row_checks(probs, row_axis=0):
    """Per-row `(finite, minimum, maximum, sum_error)` of probabilities.

    `probs` has classes on its last axis and rows on `row_axis` (`(n, C)`, or
    `(T, n, C)` samples with `row_axis=1`); every other axis is reduced.
    """
    probs = np.moveaxis(np.asarray(probs, dtype=np.float64), row_axis, 0)
    rows = probs.shape[0]
    flat = probs.reshape(rows, -1)
    sums = np.sum(probs, axis=-1).reshape(rows, -1)
    return (
        np.all(np.isfinite(flat), axis=1),
        np.min(flat, axis=1),
        np.max(flat, axis=1),
        np.max(np.abs(sums - 1.0), axis=1),
    )


def probability_problem(finite, minimum=None, maximum=None, sum_error=None):
    """`(row, description)` of the first row that is not a probability vector.

    Arguments are per-row arrays from `row_checks` (or the compiled sampler);
    only `finite` is needed for outputs that are not probabilities. Returns
    None when every row passes.
    """
    bad = ~np.asarray(finite, dtype=bool)
    if minimum is not None:
        bad |= (minimum < -PROBABILITY_TOLERANCE) | (
            maximum > 1 + PROBABILITY_TOLERANCE
        )
        bad |= sum_error > PROBABILITY_TOLERANCE
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    if not finite[row]:
        return row, "NaN or inf values"
    return row, (
        f"values in [{minimum[row]:.4g}, {maximum[row]:.4g}] and a sum "
        f"{sum_error[row]:.4g} away from 1"
    )


def entropy(probs):
    """`-sum_c p_c log p_c` over the last axis, in float64 nats."""
    probs = np.asarray(probs, dtype=np.float64)
    return -np.sum(probs * np.log(np.maximum(probs, LOG_FLOOR)), axis=-1)


def two_columns(probs):
    """A single positive-class column `p` as `[1 - p, p]`; other shapes as is."""
    if probs.shape[-1] == 1:
        return np.concatenate([1.0 - probs, probs], axis=-1)
    return probs


def from_samples(samples, classification):
    """The statistics the compiled sampler returns, from `(T, n, ...)` samples."""
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean(axis=0)
    stats = {"mean": mean, "m2": np.sum((samples - mean) ** 2, axis=0)}
    if classification:
        probs = two_columns(samples)
        stats["entropy_sum"] = entropy(probs).sum(axis=0)
        votes = np.argmax(probs, axis=-1)[..., None] == np.arange(probs.shape[-1])
        stats["votes"] = votes.sum(axis=0).astype(np.float64)
    return stats


def merge(total, stats, n_total, n_group):
    """Chan et al.'s parallel update of (mean, M2) plus plain sums."""
    if total is None:
        return stats
    n = n_total + n_group
    delta = stats["mean"] - total["mean"]
    merged = dict(total)
    merged["mean"] = total["mean"] + delta * (n_group / n)
    merged["m2"] = total["m2"] + stats["m2"] + delta**2 * (n_total * n_group / n)
    for key in ("entropy_sum", "votes"):
        if key in stats:
            merged[key] = total[key] + stats[key]
    if "samples" in stats:
        merged["samples"] = np.concatenate([total["samples"], stats["samples"]])
    return merged


def summarise(stats, n_samples, task):
    """The `MCResult` fields from merged per-row statistics."""
    fields = {
        "mean": stats["mean"].astype(np.float32),
        "std": np.sqrt(np.maximum(stats["m2"], 0.0) / n_samples).astype(np.float32),
        "n_samples": n_samples,
        "task": task,
    }
    if "samples" in stats:
        fields["samples"] = stats["samples"].astype(np.float32)
    if task == "classification":
        predictive = entropy(two_columns(stats["mean"]))
        expected = stats["entropy_sum"] / n_samples
        fields["predictive_entropy"] = predictive.astype(np.float32)
        fields["expected_entropy"] = expected.astype(np.float32)
        # >= 0 by Jensen's inequality; clip rounding noise.
        mutual = np.maximum(predictive - expected, 0.0)
        fields["mutual_information"] = mutual.astype(np.float32)
        ratio = 1.0 - stats["votes"].max(axis=-1) / n_samples
        fields["variation_ratio"] = ratio.astype(np.float32)
    return fields
