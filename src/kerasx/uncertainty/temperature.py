"""Temperature scaling in NumPy (float64): fit one temperature, apply it.

Conventions, and where the peers differ:

- kerasx returns the temperature `T` (probabilities `softmax(z / T)`).
  scikit-learn's `_TemperatureScaling` stores the inverse temperature
  `beta_ = 1 / T`, and netcal's `TemperatureScaling.temperature` is also the
  factor multiplying the logits, i.e. `1 / T` as well.
- Probabilities are turned into logits `z = log(max(p, 2.22e-16))` (the
  float64-epsilon floor of the NLL metric); scikit-learn uses `log(p + 1e-12)`,
  netcal `log(clip(p, eps, 1 - eps))`. The fitted temperatures agree to 1e-4
  relative or better on the recorded fixture (`tests/fixtures/temperature_peers.json`).
- Binary logits of shape `(n,)` / `(n, 1)` are the logit of the positive
  class, `p = sigmoid(z)` (Keras' `from_logits` convention, two-class logits
  `[0, z]`); scikit-learn expands a 1-D `decision_function` to `[-x, x]`, so
  its temperature for the same numbers is twice kerasx's.
- `calibrate` fits the temperature on what the model predicts: `predict` for
  a deterministic model, the mean of `mc_predict` for a model with MC layers.
- The temperature is searched in `[exp(-10), exp(10)]`, scikit-learn's range
  for `log(beta)`. When the NLL keeps decreasing towards one end (every
  validation row correct and confident: `T -> 0`; predictions no better than
  uniform: `T -> inf`), the end of the range is returned, as scikit-learn
  does, and kerasx also warns.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike

from kerasx import _checks
from kerasx.layers.temperature import Temperature
from kerasx.uncertainty import _sampler, _stats
from kerasx.uncertainty._predict import mc_predict
from kerasx.uncertainty.calibration import check_inputs, check_probs

#: The range of the fitted temperature (scikit-learn's `log(beta)` in [-10, 10]).
TEMPERATURE_RANGE = (math.exp(-10.0), math.exp(10.0))
#: Relative tolerance of the fitted inverse temperature.
RELATIVE_TOLERANCE = 1e-12
_MAX_ITERATIONS = 200
_LOGITS = "finite logits of shape (n, n_classes) or (n,) / (n, 1) for a binary problem"


def _softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _check_logits(logits, name="probs"):
    """`(logits as float64 (n, C), binary)`; binary `z` becomes `[0, z]`."""
    logits = _stats.numeric_array(name, logits, _LOGITS).astype(np.float64)
    binary = logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1)
    if logits.ndim not in (1, 2) or logits.shape[0] == 0:
        raise _checks.invalid_described(name, _LOGITS, f"array of shape {logits.shape}")
    if not np.all(np.isfinite(logits)):
        raise _checks.invalid_described(name, _LOGITS, "NaN or inf values")
    if binary:
        logits = logits.reshape(-1, 1)
        logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
    return logits, binary


def _as_logits(probs, from_logits, name="probs"):
    """`(logits (n, C), binary)` from probabilities or logits."""
    if _checks.boolean("from_logits", from_logits):
        return _check_logits(probs, name)
    probs, binary = check_probs(probs, name)
    return np.log(np.maximum(probs, _stats.LOG_FLOOR)), binary


def _slope_and_curvature(beta, logits, labels):
    """First and second derivative in `beta` of the mean NLL of `softmax(beta z)`."""
    probs = _softmax(beta * logits)
    mean = np.sum(probs * logits, axis=1)
    slope = np.mean(mean - logits[np.arange(labels.shape[0]), labels])
    curvature = np.mean(np.sum(probs * (logits - mean[:, None]) ** 2, axis=1))
    return float(slope), float(curvature)


def _inverse_temperature(logits, labels):
    """The `beta` in `[1 / T_max, 1 / T_min]` minimising the NLL of `beta z`.

    The NLL is convex in `beta` (its second derivative is the mean variance of
    the logits under `softmax(beta z)`), so its minimiser is the root of the
    slope: Newton steps, each kept inside a bracket that bisection (in
    `log(beta)`, the range spans 20 e-folds) shrinks whenever Newton would
    leave it. Deterministic: no random start, no tolerance on the loss.
    """
    low, high = 1.0 / TEMPERATURE_RANGE[1], 1.0 / TEMPERATURE_RANGE[0]
    if _slope_and_curvature(low, logits, labels)[0] >= 0:
        return low, "large"
    if _slope_and_curvature(high, logits, labels)[0] <= 0:
        return high, "small"
    beta = 1.0
    for _ in range(_MAX_ITERATIONS):
        slope, curvature = _slope_and_curvature(beta, logits, labels)
        if slope == 0:
            break
        if slope > 0:
            high = beta
        else:
            low = beta
        step = beta - slope / curvature if curvature > 0 else math.nan
        if not low < step < high:
            step = math.sqrt(low * high)
        if abs(step - beta) <= RELATIVE_TOLERANCE * beta:
            beta = step
            break
        beta = step
    return beta, None


def fit_temperature(
    probs: ArrayLike, y_true: ArrayLike, *, from_logits: bool = False
) -> float:
    """The temperature minimising the validation NLL (temperature scaling).

    Finds the `T > 0` minimising the mean negative log-likelihood
    `-1/n sum_i log softmax(z_i / T)[y_i]` of the labels, with `z = logits`
    (`from_logits=True`) or `z = log(probs)`: a per-row constant cancels in a
    softmax, so `softmax(log(p) / T)` is exactly temperature scaling of the
    model's logits, whatever they were. The NLL is convex in `1 / T`; the
    minimiser is found by safeguarded Newton iterations on `1 / T` in float64
    to 1e-12 relative, without SciPy. `T > 1` softens overconfident
    predictions, `T < 1` sharpens underconfident ones; the argmax never
    changes.

    `T` is searched in `[exp(-10), exp(10)]` (as scikit-learn's
    `CalibratedClassifierCV(method="temperature")`). If the NLL keeps
    decreasing towards an end of that range, that end is returned with a
    `UserWarning`: every validation row is classified correctly (the NLL
    tends to 0 as `T -> 0`), or the predictions are no better than uniform
    (`T -> inf`).

    Args:
        probs: Validation probabilities `(n, n_classes)` (rows sum to 1), or
            `(n,)` / `(n, 1)` positive-class probabilities for a binary
            problem; logits of the same shapes with `from_logits=True`
            (binary: the logit of the positive class).
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`.
        from_logits: Whether `probs` holds logits.

    Returns:
        The temperature `T`, a float in `[exp(-10), exp(10)]`.

    Raises:
        ValueError: If `from_logits` is not a bool; if `probs` is not a
            numeric array of shape `(n,)` or `(n, n_classes)` with at least 2
            rows of finite probabilities whose rows sum to 1 (or, with
            `from_logits=True`, of finite logits); if `y_true` is not one
            integer label in `[0, n_classes)` (or one one-hot row) per row.

    Example:

    ```python
    >>> from kerasx.uncertainty import (
    ...     apply_temperature, fit_temperature, negative_log_likelihood)
    >>> probs = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
    >>> labels = [0, 1, 1, 0]  # the second row is a confident mistake
    >>> temperature = fit_temperature(probs, labels)
    >>> round(temperature, 4)  # > 1: the predictions were overconfident
    1.6777
    >>> calibrated = apply_temperature(probs, temperature)
    >>> round(negative_log_likelihood(labels, probs), 4)
    0.6456
    >>> round(negative_log_likelihood(labels, calibrated), 4)  # the minimum
    0.62
    >>> calibrated.argmax(axis=1).tolist()  # the predicted classes are kept
    [0, 0, 1, 0]

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017;
        scikit-learn's `CalibratedClassifierCV(method="temperature")`.
    """
    logits, binary = _as_logits(probs, from_logits)
    if logits.shape[0] < 2:
        raise _checks.invalid_described(
            "probs", "at least 2 rows", f"array with {logits.shape[0]} row"
        )
    probabilities = _softmax(logits)
    labels, _ = check_inputs(y_true, probabilities[:, 1] if binary else probabilities)
    beta, end = _inverse_temperature(logits, labels)
    if end is not None:
        reason = (
            "as when every validation row is classified correctly"
            if end == "small"
            else "as when the predictions are no better than uniform"
        )
        warnings.warn(
            f"The NLL keeps decreasing as the temperature goes to "
            f"{'0' if end == 'small' else 'infinity'} ({reason}); returning the "
            f"end of the search range, T={1.0 / beta:.6g}.",
            UserWarning,
            stacklevel=2,
        )
    return 1.0 / beta


def apply_temperature(
    probs: ArrayLike, temperature: float, *, from_logits: bool = False
) -> np.ndarray:
    """Temperature-scaled probabilities `softmax(z / T)`, in float64.

    `z` is `log(probs)` (floored at the float64 epsilon) or, with
    `from_logits=True`, the logits themselves. Binary `(n,)` / `(n, 1)` input
    gives positive-class probabilities of the same shape,
    `sigmoid(logit(p) / T)`; `(n, n_classes)` input gives rows summing to 1.

    Args:
        probs: Probabilities or (with `from_logits=True`) logits, as for
            `fit_temperature`.
        temperature: The temperature `T > 0`, e.g. from `fit_temperature`.
        from_logits: Whether `probs` holds logits.

    Returns:
        The calibrated probabilities, a float64 array of the shape of `probs`.

    Raises:
        ValueError: If `from_logits` is not a bool; if `probs` is not a
            non-empty numeric array of shape `(n,)` or `(n, n_classes)` of
            finite probabilities whose rows sum to 1 (or, with
            `from_logits=True`, of finite logits); if `temperature` is not a
            finite float > 0.

    Example:

    ```python
    >>> from kerasx.uncertainty import apply_temperature
    >>> apply_temperature([[0.8, 0.2]], 2.0)  # sqrt(0.8) : sqrt(0.2) = 2 : 1
    array([[0.66666667, 0.33333333]])
    >>> apply_temperature([0.0, 2.0], 2.0, from_logits=True).round(4)
    array([0.5   , 0.7311])

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """
    shape = np.shape(probs)
    logits, binary = _as_logits(probs, from_logits)
    temperature = _checks.number("temperature", temperature, low=0.0, low_open=True)
    calibrated = _softmax(logits / temperature)
    if binary:
        return calibrated[:, 1].reshape(shape)
    return calibrated


def _is_probability_output(outputs):
    """Whether every row of `outputs` is a probability vector (or a `(n, 1)` one)."""
    try:
        check_probs(outputs)
    except ValueError:
        return False
    return True


def calibrate(
    model: keras.Model,
    x_val: Any,
    y_val: ArrayLike,
    *,
    from_logits: bool | None = None,
    **predict_kwargs: Any,
) -> keras.Model:
    """`model` followed by a `Temperature` layer fitted on validation data.

    The temperature is fitted (`fit_temperature`) on the model's validation
    predictions: `model.predict(x_val, **predict_kwargs)` for a deterministic
    model, and for a model with stochastic `kerasx.layers.MC*` layers the MC
    mean `mc_predict(model, x_val, **predict_kwargs).mean` (pass `n_samples`,
    `seed`, ... there), since that mean is the MC prediction. The returned
    model shares every layer and weight of `model`, appends
    `Temperature(T, from_logits)` to its single output, and saves and loads
    with `kerasx.saving` in every format.

    With MC layers, `mc_predict(calibrated, x)` averages the
    temperature-scaled passes `mean_t softmax(log(p_t) / T)`, close to but not
    the same as the scaled mean the temperature was fitted on; that one is
    `apply_temperature(mc_predict(model, x).mean, T)` with
    `T = calibrated.layers[-1].temperature`.

    Args:
        model: A single-output Sequential or Functional classifier, with a
            softmax / sigmoid output or logits.
        x_val: Validation inputs, anything `predict` (or `mc_predict`) takes.
        y_val: Validation labels `(n,)` or one-hot `(n, n_classes)`.
        from_logits: Whether the model outputs logits; `None` decides from
            the validation predictions (probabilities if every row is in
            [0, 1] and sums to 1, as the calibration metrics check; `(n, 1)`
            outputs in [0, 1] count as probabilities, so pass
            `from_logits=True` for binary logits).
        **predict_kwargs: Passed to `predict` (`batch_size`, ...; `verbose`
            defaults to 0), or to `mc_predict` for a model with MC layers.

    Returns:
        A new, uncompiled `keras.Model`: `model`, then `Temperature`.

    Raises:
        ValueError: If `model` is not a `keras.Model` with exactly one output
            (a built Sequential or Functional model); if `from_logits` is not
            None or a bool, or is True for a model with MC layers; if the
            validation predictions or `y_val` are refused by
            `fit_temperature` (e.g. fewer than 2 rows, or labels out of
            range); and as `predict` / `mc_predict` for invalid
            `predict_kwargs` or inputs.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.uncertainty import calibrate
    >>> inputs = keras.Input((2,))
    >>> outputs = keras.layers.Dense(2, activation="softmax")(inputs)
    >>> model = keras.Model(inputs, outputs)
    >>> model.set_weights([np.array([[3.0, -3.0], [-3.0, 3.0]]), np.zeros(2)])
    >>> x = np.random.default_rng(0).normal(size=(32, 2))
    >>> y = (x[:, 1] > x[:, 0]).astype(int)  # the model's predicted classes
    >>> y[::4] = 1 - y[::4]  # but it is wrong on 1 row in 4: overconfident
    >>> calibrated = calibrate(model, x, y)
    >>> type(calibrated.layers[-1]).__name__, calibrated.output_shape
    ('Temperature', (None, 2))
    >>> round(calibrated.layers[-1].temperature, 3)  # T > 1 softens
    5.536

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """
    _checks.model(model, expected="a Sequential or Functional keras.Model")
    if from_logits is not None:
        from_logits = _checks.boolean("from_logits", from_logits)
    if len(model.outputs or ()) != 1:
        raise _checks.invalid_described(
            "model",
            "a built Sequential or Functional model with one output",
            f"model '{model.name}' with {len(model.outputs or ())} outputs",
        )
    if _sampler.stochastic_layers(model):
        if from_logits:
            raise _checks.invalid(
                "from_logits",
                "False or None for a model with MC layers (mc_predict averages "
                "probabilities)",
                from_logits,
            )
        from_logits = False
        predictions = mc_predict(model, x_val, **predict_kwargs).mean
    else:
        predictions = model.predict(x_val, **{"verbose": 0, **predict_kwargs})
        if from_logits is None:
            from_logits = not _is_probability_output(predictions)
    predictions = np.asarray(predictions, dtype=np.float64)
    temperature = fit_temperature(predictions, y_val, from_logits=from_logits)
    layer = Temperature(temperature, from_logits=from_logits)
    # `inputs` / `outputs` (lists) exist on Sequential and Functional models alike;
    # `input` / `output` do not on Sequential, and may be one-element lists.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, layer(model.outputs[0]), name=f"{model.name}_calibrated")
