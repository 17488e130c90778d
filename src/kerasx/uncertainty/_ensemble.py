"""`summarize` (any stack of samples) and `ensemble_predict` (deep ensembles)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from kerasx import _checks, saving
from kerasx.uncertainty import _stats
from kerasx.uncertainty._predict import _TASKS, MCResult


def _check_samples(samples, classification, name="samples"):
    checks = _stats.row_checks(_stats.two_columns(samples), row_axis=1)
    problem = _stats.probability_problem(*(checks if classification else checks[:1]))
    if problem is not None:
        row, description = problem
        expected = "finite values"
        if classification:
            expected = "finite probabilities in [0, 1] summing to 1 along the last axis"
        raise _checks.invalid_described(name, expected, f"row {row}: {description}")


def summarize(samples: Any, task: str = "classification") -> MCResult:
    """The `MCResult` of a stack of samples, e.g. the members of an ensemble.

    Computes, in float64, exactly the statistics `mc_predict` reports, for
    samples that come from anywhere: several trained models (a deep
    ensemble), test-time augmentation, or your own sampling loop.

    With `p_t` the class probabilities of sample `t` (t = 1..T) and
    `p = mean_t p_t`: `predictive_entropy = H[p]`,
    `expected_entropy = mean_t H[p_t]`, `mutual_information = H[p] -
    mean_t H[p_t]` (the BALD score), `variation_ratio = 1 - (votes for the
    modal class) / T`, in nats, with `H[q] = -sum_c q_c log q_c`.

    Args:
        samples: Array `(T, N, C)` of `T` samples of `N` rows (class
            probabilities for classification), or `(T, N)`: for
            classification the positive-class probability of a binary
            problem (read as `[1 - p, p]`), for regression one value per row.
        task: `"classification"` or `"regression"`.

    Returns:
        An `MCResult` with `n_samples = T` and `samples` set; `mean` and
        `std` have the shape of one sample.

    Raises:
        ValueError: If `task` is not `"classification"` or `"regression"`;
            if `samples` is not a non-empty numeric array of shape `(T, N)`
            or `(T, N, C)`; if it holds NaN or inf, or, for classification,
            rows that are not probabilities in [0, 1] summing to 1 (the
            message names the first such row).

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.uncertainty import summarize
    >>> members = np.array([[[0.9, 0.1]], [[0.1, 0.9]]])  # 2 models, 1 row
    >>> result = summarize(members)
    >>> result.mean.tolist(), round(float(result.mutual_information[0]), 4)
    ([[0.5, 0.5]], 0.3681)
    >>> agree = summarize(np.array([[[0.5, 0.5]], [[0.5, 0.5]]]))  # same answer
    >>> round(float(agree.predictive_entropy[0]), 4), float(agree.mutual_information[0])
    (0.6931, 0.0)

    ```

    Reference:
        Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty
        Estimation using Deep Ensembles", NeurIPS 2017; Houlsby et al.,
        "Bayesian Active Learning for Classification and Preference
        Learning" (BALD), 2011.
    """
    _checks.choice("task", task, _TASKS)
    array = _stats.numeric_array(
        "samples", samples, "a numeric array of shape (T, N) or (T, N, C)"
    ).astype(np.float64)
    if array.ndim < 2 or 0 in array.shape:
        raise _checks.invalid_described(
            "samples",
            "a non-empty array of shape (T, N) or (T, N, C)",
            f"array of shape {array.shape}",
        )
    classification = task == "classification"
    flat = array.ndim == 2
    if flat:
        array = array[..., None]
    _check_samples(array, classification)
    stats = _stats.from_samples(array, classification)
    stats["samples"] = array
    fields = _stats.summarise(stats, array.shape[0], task)
    if flat:
        for key in ("mean", "std", "samples"):
            fields[key] = fields[key][..., 0]
    return MCResult(**fields)


def ensemble_predict(
    models: Sequence[keras.Model | str | os.PathLike],
    x: Any,
    *,
    batch_size: int | None = None,
    task: str = "classification",
) -> MCResult | Any:
    """Predicts with every member of a deep ensemble and summarises them.

    Each model predicts `x` (`Model.predict`, inference mode), and the stack
    of their outputs is summarised by `summarize`: `mean` is the ensemble
    prediction, `mutual_information` the disagreement between members.

    Args:
        models: Two or more `keras.Model`s with outputs of the same shapes
            (e.g. the same architecture trained from different seeds), or
            paths of saved models (str or os.PathLike, e.g. the `paths` of a
            `kerasx.callbacks.SnapshotEnsemble`), each loaded with
            `kerasx.saving.load(path, compile=False)`; the two can be mixed.
        x: Anything `Model.predict` takes except a generator or iterator that
            can be read only once (each member reads `x` again).
        batch_size: Passed to `Model.predict`.
        task: `"classification"` (probability outputs) or `"regression"`.

    Returns:
        An `MCResult` over the members (`n_samples = len(models)`); for
        models with several outputs, the output structure with one `MCResult`
        per output.

    Raises:
        ValueError: If `models` is not a sequence of at least two
            `keras.Model`s or paths; if `batch_size` is not None or an
            integer >= 1, or `task` not `"classification"` or `"regression"`;
            if `x` is an iterator that can be read only once; if the members'
            outputs differ in shape; if a member's outputs are not finite
            (or, for classification, not probabilities); or if a path holds a
            corrupt file (see `kerasx.saving.load`).
        FileNotFoundError: If a path names no file.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.uncertainty import ensemble_predict
    >>> def member(weight):  # softmax([w x, -w x]): the members disagree
    ...     model = keras.Sequential([keras.Input((1,)),
    ...         keras.layers.Dense(2, activation="softmax")])
    ...     model.set_weights([np.array([[weight, -weight]]), np.zeros(2)])
    ...     return model
    >>> members = [member(w) for w in (1.0, 2.0, -1.0)]
    >>> result = ensemble_predict(members, np.array([[0.0], [1.0]]))
    >>> result.n_samples, result.samples.shape  # (members, rows, classes)
    (3, (3, 2, 2))
    >>> np.round(result.mean, 4)  # the ensemble prediction
    array([[0.5   , 0.5   ],
           [0.6607, 0.3393]], dtype=float32)
    >>> np.round(result.mutual_information, 4)  # first row: the members agree
    array([0.   , 0.367], dtype=float32)

    ```

    Reference:
        Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty
        Estimation using Deep Ensembles", NeurIPS 2017.
    """
    expected = "a sequence of keras.Model or saved-model paths (str or os.PathLike)"
    single = isinstance(models, (keras.Model, str, bytes, os.PathLike))
    if single or not isinstance(models, Sequence):
        raise _checks.invalid("models", expected, models)
    if len(models) < 2:
        raise _checks.invalid("models", "at least 2 models", models)
    for member in models:
        if not isinstance(member, (str, os.PathLike)):
            _checks.model(member, name="models", expected=expected)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1, allow_none=True)
    _checks.choice("task", task, _TASKS)
    if hasattr(x, "__next__"):
        raise _checks.invalid(
            "x",
            "inputs every member can read (arrays, a dataset or a PyDataset), "
            "not an iterator that can be read once",
            x,
        )
    models = [
        saving.load(member, compile=False)
        if isinstance(member, (str, os.PathLike))
        else member
        for member in models
    ]
    predictions = [
        keras.tree.flatten(member.predict(x, batch_size=batch_size, verbose=0))
        for member in models
    ]
    shapes = [[np.shape(output) for output in outputs] for outputs in predictions]
    if any(shape != shapes[0] for shape in shapes):
        raise _checks.invalid(
            "models", "models whose outputs have the same shapes", shapes
        )
    results = []
    for index in range(len(predictions[0])):
        stack = np.stack([outputs[index] for outputs in predictions])
        results.append(summarize(stack, task=task))
    if len(results) == 1:
        return results[0]
    return keras.tree.pack_sequence_as(models[0].output, results)
