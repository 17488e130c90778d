"""`mc_predict`: vectorised Monte Carlo prediction with streaming statistics."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from kerasx import _checks, _keras_internals
from kerasx.uncertainty import _sampler, _stats

_TASKS = ("classification", "regression")
#: Rows and samples are numbered by int32 counters (the MC layers' noise keys).
INDEX_LIMIT = 2**31


@dataclasses.dataclass(frozen=True)
class MCResult:
    """Summary of `n_samples` stochastic forward passes.

    All arrays are float32 and indexed like the model output (first axis: the
    rows of `x`). The statistics are computed in float64 from the samples and
    stored as float32. The classification fields are `None` for regression.

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

    Raises:
        dataclasses.FrozenInstanceError: If a field is assigned: a result is
            immutable (use `dataclasses.replace` for a modified copy).

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.uncertainty import summarize
    >>> result = summarize(np.array([[[0.9, 0.1]], [[0.1, 0.9]]]))  # 2 samples, 1 row
    >>> result.n_samples, result.task, result.mean.shape, result.samples.shape
    (2, 'classification', (1, 2), (2, 1, 2))
    >>> np.round(result.std, 4)
    array([[0.4, 0.4]], dtype=float32)
    >>> fields = ("predictive_entropy", "expected_entropy", "mutual_information")
    >>> [round(float(getattr(result, name)[0]), 4) for name in fields]
    [0.6931, 0.3251, 0.3681]
    >>> regression = summarize(np.array([[1.0, 2.0], [3.0, 2.0]]), task="regression")
    >>> regression.mean.tolist(), regression.std.tolist()
    ([2.0, 2.0], [1.0, 0.0])
    >>> regression.mutual_information is None  # classification fields only
    True

    ```
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


def _rows_of(leaves, where):
    rows = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if len(rows) != 1 or None in rows or 0 in rows:
        shapes = [leaf.shape for leaf in leaves]
        raise _checks.invalid(
            "x", f"arrays with the same number (>= 1) of rows{where}", shapes
        )
    for leaf in leaves:
        if np.issubdtype(leaf.dtype, np.floating) and not np.all(np.isfinite(leaf)):
            raise _checks.invalid_described(
                "x", f"finite values (no NaN or inf){where}", "array with NaN/inf"
            )
    return rows.pop()


def _to_numpy(leaf):
    try:
        return np.asarray(leaf)
    except (TypeError, RuntimeError):  # E.g. a torch tensor that requires grad.
        return np.asarray(keras.ops.convert_to_numpy(leaf))


def _as_numpy(x):
    """`(structure, leaves as NumPy arrays)` of one batch."""
    leaves = [_to_numpy(leaf) for leaf in keras.tree.flatten(x)]
    return keras.tree.pack_sequence_as(x, leaves), leaves


def _rows(leaf, offset, used, rows):
    """`leaf[offset : offset + used]`, padded to `rows` rows (one compiled shape)."""
    chunk = leaf[offset : offset + used]
    if used < rows:  # The padding rows are sliced off the results.
        pad = np.repeat(chunk[-1:], rows - used, axis=0)
        chunk = np.concatenate([chunk, pad], axis=0)
    return chunk


def _chunks(model, x, n_samples, batch_size, steps) -> Iterator[tuple]:
    """Yields `(start row, inputs, rows used, rows per call, samples per call)`.

    Arrays are sliced here; datasets and generators are read batch by batch
    (as `Model.predict` reads them) and each batch is split or padded to the
    planned number of rows, so one compiled shape serves every call.
    """
    if _keras_internals.is_array_input(x):
        if steps is not None:
            raise _checks.invalid(
                "steps", "None for array inputs (all rows are used)", steps
            )
        structure, leaves = _as_numpy(x)
        batches = [(structure, leaves, _rows_of(leaves, ""))]
    else:

        def read():
            for index, batch in enumerate(
                _keras_internals.predict_batches(x, steps=steps)
            ):
                structure, leaves = _as_numpy(batch)
                n_rows = _rows_of(leaves, f" in every batch (batch {index})")
                yield structure, leaves, n_rows

        batches = read()
    plan = None
    start = 0
    for structure, leaves, n_rows in batches:
        if plan is None:
            plan = _sampler.plan_chunks(
                n_rows,
                n_samples,
                batch_size,
                _sampler.bytes_per_row(model, leaves),
                _sampler.DEFAULT_MEMORY_BUDGET,
            )
        rows = plan[0]
        for offset in range(0, n_rows, rows):
            used = min(rows, n_rows - offset)

            inputs = keras.tree.pack_sequence_as(
                structure, [_rows(leaf, offset, used, rows) for leaf in leaves]
            )
            yield start, inputs, used, *plan
            start += used
    if plan is None:
        raise _checks.invalid_described(
            "x", "at least one batch of inputs", "no batches"
        )


def _output_structure(model, n_outputs):
    try:
        structure = model.output
    except (AttributeError, ValueError):
        structure = None
    if structure is not None and len(keras.tree.flatten(structure)) == n_outputs:
        return structure
    return list(range(n_outputs))


def mc_predict(
    model: keras.Model,
    x: Any,
    *,
    n_samples: int = 100,
    batch_size: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    task: str = "classification",
    allow_deterministic: bool = False,
    return_samples: bool = False,
) -> MCResult | Any:
    """Monte Carlo prediction: statistics of `n_samples` stochastic passes.

    The model runs in inference mode (BatchNormalization uses its moving
    statistics and is never updated); its MC layers (`kerasx.layers.MC*`,
    e.g. from `to_mc`) supply the randomness. Many samples are evaluated per
    compiled call by tiling a chunk of rows, and only running statistics are
    kept (shifted mean and `M2`, merged in float64 with Chan et al.'s parallel
    update), so memory is bounded by one chunk, chosen from a 64 MiB
    activation budget unless `batch_size` fixes the rows per call. Datasets
    and generators are read one batch at a time. Every statistic is the
    float64 statistic of the float32 samples: reduced in float64 in the
    compiled call, or, where the backend has no float64 (JAX without
    `jax_enable_x64`), from each call's samples on the host.

    For class probabilities `p_t` (t = 1..T), with `p = mean_t p_t`:
    `predictive_entropy = -sum_c p_c log p_c`,
    `expected_entropy = mean_t (-sum_c p_tc log p_tc)`,
    `mutual_information = predictive_entropy - expected_entropy`, and
    `variation_ratio = 1 - max_c #{t: argmax p_t = c} / T`. A single sigmoid
    unit is read as `[1 - p, p]` for these.

    Reproducibility: the MC layers' noise for sample `t` of the row at index
    `i` of `x` is a function of `(seed, i, t)` only (a counter-based hash, see
    `kerasx.layers.mc_dropout.RowNoise`), so a fixed `seed` gives the same
    samples whatever `batch_size` or dataset batching is used (up to float32
    rounding of the model's own arithmetic). The model's state is not
    touched: its layers' `SeedGenerator`s are not used or advanced. With
    `seed=None` a seed is drawn from Python's `random` module, so
    `keras.utils.set_random_seed` makes runs reproducible.

    Args:
        model: A `keras.Model` with at least one MC layer of non-zero rate.
        x: Anything `Model.predict` takes: an array, a list or dict of
            arrays, a `keras.utils.PyDataset`, a `tf.data.Dataset`, a torch
            `DataLoader` or a generator (targets and sample weights that a
            dataset yields are ignored).
        n_samples: Number of stochastic forward passes, in `[1, 2**31]`
            (samples are numbered by int32 counters).
        batch_size: Rows per compiled call. Default: from the memory budget
            (and at most one dataset batch).
        steps: For datasets and generators: number of batches to read
            (required for a generator that never ends).
        seed: Integer seed in `[0, 2**32 - 1]` for reproducible samples.
        task: `"classification"` (outputs are probabilities summing to 1
            along the last axis, or one sigmoid unit) or `"regression"`.
        allow_deterministic: Accept a model without stochastic layer (all
            samples are then equal and `std` is 0).
        return_samples: Also return every sample (memory grows with
            `n_samples` and the number of rows).

    Returns:
        An `MCResult`; for a model with several outputs, the model's output
        structure (list or dict) with one `MCResult` per output.

    Raises:
        ValueError: If `model` is not a `keras.Model`; if `n_samples` is not
            an integer in `[1, 2**31]`, `batch_size` or `steps` not None or an
            integer >= 1, `seed` not None or an integer in `[0, 2**32 - 1]`,
            `task` not `"classification"` or `"regression"`, or
            `allow_deterministic` or `return_samples` not a bool; if the model
            has no stochastic layer and `allow_deterministic=False`; if `steps`
            is given with array inputs; if the arrays of `x` (or of a batch)
            do not share one number (>= 1) of rows, hold NaN or inf, or `x`
            yields no batch; if an MC layer receives inputs whose non-batch
            axes are not all known; if an output is not finite (or, for
            classification, not a probability vector: the message names the
            first such row of `x`).

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCDropout
    >>> from kerasx.uncertainty import mc_predict
    >>> model = keras.Sequential([keras.Input((3,)), MCDropout(0.5),
    ...     keras.layers.Dense(2, activation="softmax")])
    >>> model.set_weights([np.array([[2.0, -2.0], [1.0, 0.0], [0.0, 1.0]]),
    ...     np.zeros(2)])
    >>> x = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    >>> result = mc_predict(model, x, n_samples=50, seed=0)
    >>> np.round(result.mean, 3)  # class probabilities averaged over 50 passes
    array([[0.737, 0.263],
           [0.5  , 0.5  ]], dtype=float32)
    >>> np.round(result.predictive_entropy, 4)  # total uncertainty (nats)
    array([0.5759, 0.6931], dtype=float32)
    >>> np.round(result.mutual_information, 4)  # second row: all passes agree
    array([0.2577, 0.    ], dtype=float32)
    >>> same = mc_predict(model, x, n_samples=50, seed=0, batch_size=1)
    >>> bool(np.allclose(same.mean, result.mean, atol=1e-6))  # any batch size
    True

    ```

    Reference:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016;
        Géron, Hands-On Machine Learning, 3rd ed., ch. 11 (MC dropout).
    """
    _checks.model(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1, maximum=INDEX_LIMIT)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1, allow_none=True)
    steps = _checks.integer("steps", steps, minimum=1, allow_none=True)
    seed = _checks.seed("seed", seed)
    _checks.choice("task", task, _TASKS)
    allow_deterministic = _checks.boolean("allow_deterministic", allow_deterministic)
    return_samples = _checks.boolean("return_samples", return_samples)
    if not _sampler.stochastic_layers(model) and not allow_deterministic:
        raise ValueError(
            f"Model '{model.name}' has no stochastic layer (no kerasx MC layer "
            "with a non-zero rate), so all Monte Carlo samples would be equal. "
            "Convert its dropout layers with `kerasx.uncertainty.to_mc(model)`, "
            "or pass allow_deterministic=True."
        )
    if seed is None:
        seed = random.randint(0, 2**32 - 1)
    seed_word = int(np.array(seed, dtype=np.uint32).view(np.int32))
    classification = task == "classification"
    per_output = None
    for start, inputs, used, rows, per_call in _chunks(
        model, x, n_samples, batch_size, steps
    ):
        if start + used > INDEX_LIMIT:
            raise _checks.invalid_described(
                "x",
                f"at most {INDEX_LIMIT} rows (rows are numbered by int32 counters)",
                f"{start + used} rows or more",
            )
        counters = np.zeros((rows, 3), dtype=np.int32)
        counters[:, 0] = seed_word
        # Padding rows repeat the last row, index included; they are dropped.
        counters[:, 1] = start + np.minimum(np.arange(rows), used - 1)
        totals = None
        done = 0
        while done < n_samples:
            group = min(per_call, n_samples - done)
            counters[:, 2] = done
            sampler = _sampler.get_sampler(model, group, classification, return_samples)
            outputs = sampler.predict_on_batch((inputs, counters))
            stats = [
                _host_stats(output, used, classification, return_samples)
                for output in outputs
            ]
            for index, output in enumerate(stats):
                _check_output(model, output, index, len(stats), start, classification)
            totals = [
                _stats.merge(None if totals is None else totals[i], s, done, group)
                for i, s in enumerate(stats)
            ]
            done += group
        if per_output is None:
            per_output = [[] for _ in totals]
        for collected, total in zip(per_output, totals, strict=True):
            collected.append(total)
    results = [
        MCResult(**_stats.summarise(_concatenate(chunks), n_samples, task))
        for chunks in per_output
    ]
    if len(results) == 1:
        return results[0]
    return keras.tree.pack_sequence_as(_output_structure(model, len(results)), results)


def _host_stats(output, used, classification, return_samples):
    """One output's statistics as float64, padding rows removed.

    A sampler without float64 returns only the samples; they are reduced
    here, in float64, to the statistics the other samplers compute in-graph.
    """
    stats = {}
    for key, value in output.items():
        value = np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)[:used]
        if key == "samples":  # The sampler returns them row-first.
            value = np.moveaxis(value, 1, 0)
        stats[key] = value
    if "mean" in stats:
        return stats
    samples = stats.pop("samples")
    stats = _stats.from_samples(samples, classification)
    finite, minimum, maximum, sum_error = _stats.row_checks(
        _stats.two_columns(samples), row_axis=1
    )
    stats["finite"] = finite
    if classification:
        stats.update(minimum=minimum, maximum=maximum, sum_error=sum_error)
    if return_samples:
        stats["samples"] = samples
    return stats


def _check_output(model, stats, index, n_outputs, start, classification):
    checks = [stats.pop("finite") > 0]
    if classification:
        checks += [stats.pop(key) for key in ("minimum", "maximum", "sum_error")]
    problem = _stats.probability_problem(*checks)
    if problem is None:
        return
    row, description = problem
    which = f"output {index} of model" if n_outputs > 1 else "model"
    expected = "finite values"
    advice = ""
    if classification:
        expected = "finite probabilities (in [0, 1], summing to 1 along the last axis)"
        advice = " Add a softmax output or pass task='regression'."
    raise ValueError(
        f"The {which} '{model.name}' must output {expected}, but its samples for "
        f"row {start + row} of `x` have {description}.{advice}"
    )


def _concatenate(chunks):
    return {
        key: np.concatenate([c[key] for c in chunks], axis=1 if key == "samples" else 0)
        for key in chunks[0]
    }
