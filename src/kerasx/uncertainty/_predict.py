"""`mc_predict`: vectorised Monte Carlo prediction with streaming statistics."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import keras
import numpy as np

from kerasx._state import VariableSnapshot
from kerasx.uncertainty import _sampler, _stats

_TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True)
class MCResult:
    """Summary of `n_samples` stochastic forward passes.

    All arrays are float32 and indexed like the model output (first axis: the
    rows of `x`). The classification fields are `None` for regression.

    Attributes:
        mean: Mean output over the samples (mean class probabilities).
        std: Population standard deviation over the samples (ddof=0).
        n_samples: Number of stochastic forward passes.
        task: `"classification"` or `"regression"`.
        samples: All samples, shape `(n_samples, *output_shape)`, only when
            `mc_predict(..., return_samples=True)`.
        predictive_entropy: `H[mean] = -sum_c mean_c log mean_c` (nats), total
            uncertainty.
        expected_entropy: `mean_t H[p_t]` (nats), aleatoric part.
        mutual_information: `H[mean] - mean_t H[p_t] >= 0` (nats), epistemic
            part (the BALD score).
        variation_ratio: `1 - (votes for the modal class) / n_samples`.
    """

    mean: np.ndarray
    std: np.ndarray
    n_samples: int
    task: str
    samples: np.ndarray | None = None
    predictive_entropy: np.ndarray | None = None
    expected_entropy: np.ndarray | None = None
    mutual_information: np.ndarray | None = None
    variation_ratio: np.ndarray | None = None


def _invalid(name, expected, value):
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def _validate(model, leaves, n_samples, batch_size, seed, task, flags):
    if not isinstance(model, keras.Model):
        raise _invalid("model", "a keras.Model", model)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise _invalid("n_samples", "an integer >= 1", n_samples)
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise _invalid("batch_size", "None or an integer >= 1", batch_size)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _invalid("seed", "None or an integer", seed)
    if task not in _TASKS:
        raise _invalid("task", f"one of {_TASKS}", task)
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise _invalid(name, "a bool", value)
    rows = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if len(rows) != 1 or None in rows or 0 in rows:
        shapes = [leaf.shape for leaf in leaves]
        raise _invalid("x", "arrays with the same number (>= 1) of rows", shapes)
    for leaf in leaves:
        if np.issubdtype(leaf.dtype, np.floating) and not np.all(np.isfinite(leaf)):
            raise _invalid("x", "finite values (no NaN or inf)", "<array with NaN/inf>")


def mc_predict(
    model: keras.Model,
    x: Any,
    *,
    n_samples: int = 100,
    batch_size: int | None = None,
    seed: int | None = None,
    task: str = "classification",
    allow_deterministic: bool = False,
    return_samples: bool = False,
) -> MCResult:
    """Monte Carlo prediction: statistics of `n_samples` stochastic passes.

    The model runs in inference mode (BatchNormalization uses its moving
    statistics and is never updated); its MC layers (`kerasx.layers.MC*`,
    e.g. from `to_mc`) supply the randomness. Many samples are evaluated per
    compiled call by tiling a chunk of rows, and only running statistics are
    kept (shifted mean and `M2`, merged with Chan et al.'s parallel update),
    so memory is bounded by the chunk size, chosen from a 64 MiB activation
    budget unless `batch_size` fixes the rows per call.

    For class probabilities `p_t` (t = 1..T), with `p = mean_t p_t`:
    `predictive_entropy = -sum_c p_c log p_c`,
    `expected_entropy = mean_t (-sum_c p_tc log p_tc)`,
    `mutual_information = predictive_entropy - expected_entropy`, and
    `variation_ratio = 1 - max_c #{t: argmax p_t = c} / T`. A single sigmoid
    unit is read as `[1 - p, p]` for these.

    The model's state is left bit-identical: the seed states of its random
    layers are set from `seed` for the run and restored afterwards. With
    `seed=None` a seed is drawn from Python's `random` module, so
    `keras.utils.set_random_seed` makes runs reproducible.

    Args:
        model: A `keras.Model` with at least one MC layer of non-zero rate.
        x: Input array (or the structure of arrays the model takes).
        n_samples: Number of stochastic forward passes, >= 1.
        batch_size: Rows of `x` per compiled call. Default: from the budget.
        seed: Integer seed for reproducible samples.
        task: `"classification"` (outputs are probabilities summing to 1
            along the last axis, or one sigmoid unit) or `"regression"`.
        allow_deterministic: Accept a model without stochastic layer (all
            samples are then equal and `std` is 0).
        return_samples: Also return every sample (memory grows with
            `n_samples`).

    Returns:
        An `MCResult`.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.layers import MCDropout
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     MCDropout(0.5), keras.layers.Dense(3, activation="softmax")])
    >>> result = mc_predict(model, np.ones((2, 4)), n_samples=20, seed=0)
    >>> result.mean.shape, result.mutual_information.shape
    ((2, 3), (2,))

    ```

    Reference:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016;
        Géron, Hands-On Machine Learning, 3rd ed., ch. 11 (MC dropout).
    """
    leaves = [np.asarray(leaf) for leaf in keras.tree.flatten(x)]
    flags = {
        "allow_deterministic": allow_deterministic,
        "return_samples": return_samples,
    }
    _validate(model, leaves, n_samples, batch_size, seed, task, flags)
    stochastic = _sampler.stochastic_layers(model)
    if not stochastic and not allow_deterministic:
        raise ValueError(
            f"Model '{model.name}' has no stochastic layer (no kerasx MC layer "
            "with a non-zero rate), so all Monte Carlo samples would be equal. "
            "Convert its dropout layers with `kerasx.uncertainty.to_mc(model)`, "
            "or pass allow_deterministic=True."
        )
    x = keras.tree.pack_sequence_as(x, leaves)
    n_rows = leaves[0].shape[0]
    rows, samples_per_call = _sampler.plan_chunks(
        n_rows,
        n_samples,
        batch_size,
        _sampler.bytes_per_row(model, leaves),
        _sampler.DEFAULT_MEMORY_BUDGET,
        _sampler.samples_must_be_separate(stochastic),
    )
    classification = task == "classification"
    seed_variables = _sampler.seed_states(model)
    saved = VariableSnapshot(seed_variables)
    try:
        _sampler.reseed(
            seed_variables, random.randint(0, 2**31 - 1) if seed is None else seed
        )
        chunks = [
            _run_chunk(
                model,
                x,
                start,
                rows,
                n_rows,
                n_samples,
                samples_per_call,
                classification,
                return_samples,
            )
            for start in range(0, n_rows, rows)
        ]
    finally:
        saved.restore()
    merged = {
        key: np.concatenate([c[key] for c in chunks], axis=1 if key == "samples" else 0)
        for key in chunks[0]
    }
    return MCResult(**_stats.summarise(merged, n_samples, task))


def _run_chunk(
    model, x, start, rows, n_rows, n_samples, per_call, classification, keep
):
    """Statistics for rows `[start, start + rows)`, merged over sample groups."""
    stop = min(start + rows, n_rows)

    def take(leaf):
        chunk = leaf[start:stop]
        if stop - start < rows:  # Pad to one compiled shape; sliced off below.
            pad = np.repeat(chunk[-1:], rows - (stop - start), axis=0)
            chunk = np.concatenate([chunk, pad], axis=0)
        return chunk

    inputs = keras.tree.map_structure(take, x)
    total = None
    done = 0
    while done < n_samples:
        group = min(per_call, n_samples - done)
        sampler = _sampler.get_sampler(model, group, classification, keep)
        stats = sampler.predict_on_batch(inputs)
        stats = {
            key: np.asarray(value, dtype=np.float64) for key, value in stats.items()
        }
        if "samples" in stats:  # The sampler returns them row-first.
            stats["samples"] = np.moveaxis(stats["samples"], 1, 0)
        stats = {
            key: value[(slice(None),) * (key == "samples") + (slice(0, stop - start),)]
            for key, value in stats.items()
        }
        if classification and total is None:
            _stats.check_probabilities(stats)
        total = _stats.merge(total, stats, done, group)
        done += group
    return total
