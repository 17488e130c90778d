"""Monte Carlo dropout and predictive uncertainty.

`to_mc` turns the dropout-family layers of a trained model into their
always-stochastic MC twins (sharing every weight), `mc_predict` averages many
stochastic forward passes into an `MCResult` with uncertainty measures,
`summarize` computes the same measures for any stack of samples and
`ensemble_predict` for the members of a deep ensemble, and the calibration
metrics score the resulting probabilities. Temperature scaling recalibrates
them, `ood_metrics` scores an uncertainty as an out-of-distribution detector
and `conformal_sets` turns probabilities into prediction sets with a coverage
guarantee.
"""

from __future__ import annotations

import keras

from kerasx import _checks, _keras_internals
from kerasx.layers.mc_dropout import KERAS_TO_MC, MC_TO_KERAS
from kerasx.transforms import rewrite_model
from kerasx.uncertainty._ensemble import ensemble_predict, summarize
from kerasx.uncertainty._predict import MCResult, mc_predict
from kerasx.uncertainty.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
)
from kerasx.uncertainty.conformal import conformal_sets, set_coverage, set_size
from kerasx.uncertainty.ood import ood_metrics
from kerasx.uncertainty.temperature import (
    apply_temperature,
    calibrate,
    fit_temperature,
)

__all__ = [
    "MCResult",
    "apply_temperature",
    "brier_score",
    "calibrate",
    "conformal_sets",
    "ensemble_predict",
    "expected_calibration_error",
    "fit_temperature",
    "from_mc",
    "mc_predict",
    "negative_log_likelihood",
    "ood_metrics",
    "set_coverage",
    "set_size",
    "summarize",
    "to_mc",
]


def _mapping_rule(mapping: dict[type, type]):
    watched = tuple(mapping)

    def rule(layer, context):
        target = mapping.get(type(layer))
        if target is not None:
            return target.from_config(layer.get_config())
        if not isinstance(layer, keras.Model):
            # A custom layer holding dropout sublayers cannot be rebuilt by a
            # graph rewrite; silently leaving them deterministic would be wrong.
            hidden = [
                inner.name
                for inner in _keras_internals.nested_layers(layer)
                if type(inner) in watched
            ]
            if hidden:
                raise ValueError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) contains "
                    f"layers {hidden} that would need converting, but it is a "
                    "custom layer that cannot be rebuilt. Build it with the "
                    "kerasx.layers MC twins directly, or make it a Functional "
                    "submodel."
                )
        return None

    return rule


def to_mc(model: keras.Model) -> keras.Model:
    """Returns a Monte Carlo dropout version of `model` sharing its weights.

    Every `Dropout`, `AlphaDropout`, `GaussianDropout`, `GaussianNoise` and
    `SpatialDropout1D/2D/3D` is replaced by its `kerasx.layers.MC*` twin with
    the same config; the match is by exact type, so a `SpatialDropout2D`
    becomes `MCSpatialDropout2D` (not `MCDropout`) and subclasses of these
    layers are left alone. Every other layer, BatchNormalization included, is
    the very same object, so the two models share their weights (training one
    trains the other) and the new model's BatchNormalization stays in
    inference mode in `predict`, unlike the `model(x, training=True)` recipe.
    Nested Sequential/Functional models are converted recursively. The
    original model is not modified, and the result is not compiled.

    Args:
        model: A Sequential or Functional model.

    Returns:
        A new model of the same kind whose dropout layers are always active.

    Raises:
        ValueError: If `model` is not a `keras.Model`; if it (or a model
            nested in it) is a subclassed Model without a functional graph; if
            a custom layer holds dropout layers that cannot be replaced (the
            message names them).

    Example:

    ```python
    >>> import keras
    >>> from kerasx.uncertainty import to_mc
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    >>> mc_model = to_mc(model)
    >>> [type(layer).__name__ for layer in mc_model.layers]
    ['Dense', 'MCDropout', 'Dense']
    >>> mc_model.layers[0] is model.layers[0]  # the same layer: weights shared
    True
    >>> [type(layer).__name__ for layer in model.layers]  # the original is kept
    ['Dense', 'Dropout', 'Dense']

    ```

    Reference:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.
    """
    _checks.model(model, expected="a Sequential or Functional keras.Model")
    return rewrite_model(model, _mapping_rule(KERAS_TO_MC))


def from_mc(model: keras.Model) -> keras.Model:
    """Inverse of `to_mc`: MC layers back to the Keras layers, weights shared.

    Each `kerasx.layers.MC*` layer is replaced (by exact type) by the Keras
    layer it twins, with the same config; every other layer is kept as is.

    Args:
        model: A Sequential or Functional model.

    Returns:
        A new model whose dropout layers are active only in training.

    Raises:
        ValueError: If `model` is not a `keras.Model`; if it (or a model
            nested in it) is a subclassed Model without a functional graph; if
            a custom layer holds MC layers that cannot be replaced (the
            message names them).

    Example:

    ```python
    >>> import keras
    >>> from kerasx.layers import MCDropout
    >>> from kerasx.uncertainty import from_mc
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     MCDropout(0.5), keras.layers.Dense(2)])
    >>> keras_model = from_mc(model)
    >>> [type(layer).__name__ for layer in keras_model.layers]
    ['Dense', 'Dropout', 'Dense']
    >>> keras_model.layers[1].rate, keras_model.layers[0] is model.layers[0]
    (0.5, True)

    ```

    Reference:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016.
    """
    _checks.model(model, expected="a Sequential or Functional keras.Model")
    return rewrite_model(model, _mapping_rule(MC_TO_KERAS))
