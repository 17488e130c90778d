"""Host-side (float64) merging and summaries of the per-chunk MC statistics."""

from __future__ import annotations

import numpy as np

_PROBABILITY_TOLERANCE = 1e-3


def check_probabilities(stats):
    """Raises unless the first chunk's samples look like probabilities."""
    if (
        stats["min"].min() < -_PROBABILITY_TOLERANCE
        or stats["max"].max() > 1 + _PROBABILITY_TOLERANCE
        or stats["sum_error"].max() > _PROBABILITY_TOLERANCE
    ):
        raise ValueError(
            "With task='classification' the model must output probabilities "
            "(in [0, 1], summing to 1 along the last axis, or a single sigmoid "
            f"unit); the largest deviation of a sum from 1 was "
            f"{stats['sum_error'].max():.3g}. Add a softmax output or pass "
            "task='regression'."
        )


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
        mean = stats["mean"]
        if mean.shape[-1] == 1:
            mean = np.concatenate([1.0 - mean, mean], axis=-1)
        log_mean = np.log(np.maximum(mean, 1e-30))
        predictive = -np.sum(mean * log_mean, axis=-1)
        expected = stats["entropy_sum"] / n_samples
        fields["predictive_entropy"] = predictive.astype(np.float32)
        fields["expected_entropy"] = expected.astype(np.float32)
        # >= 0 by Jensen's inequality; clip float32 rounding noise.
        mutual = np.maximum(predictive - expected, 0.0)
        fields["mutual_information"] = mutual.astype(np.float32)
        ratio = 1.0 - stats["votes"].max(axis=-1) / n_samples
        fields["variation_ratio"] = ratio.astype(np.float32)
    return fields
