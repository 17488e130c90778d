"""What `GradientStats` and `ActivationStats` share: the probe batch and its schedule.

Both callbacks evaluate the model on one fixed batch, at the current weights,
inside a `keras.StatelessScope`: whatever the forward pass would assign (the
BatchNormalization moving statistics, a dropout layer's seed-generator state,
the loss tracker) is recorded in the scope and dropped, so no state of the
model, its optimizer or Keras' RNGs moves. The seed-generator states are also
snapshotted and restored around each probe, a belt-and-braces guard for custom
layers that assign outside the scope's reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from kerasx import _checks, _keras_internals
from kerasx._state import VariableSnapshot
from kerasx.ops import _rng

PER_OPTIONS = ("epoch", "batch")


def check_data(name: str, data: Any, *, targets: bool) -> tuple[Any, Any, Any]:
    """`(x, y, sample_weight)` of a probe batch; checks its leaves and sizes.

    A tuple is unpacked as `fit` unpacks one, into `(x,)`, `(x, y)` or
    `(x, y, sample_weight)`; anything else (an array, a list or dict of arrays)
    is `x`. With `targets=True` the targets are required.
    """
    expected = (
        "a probe batch `(x, y)` or `(x, y, sample_weight)` of arrays with the "
        "same number of samples"
        if targets
        else "a probe batch of inputs `x`, or a tuple `(x, y[, sample_weight])` "
        "whose targets are ignored, of arrays with the same number of samples"
    )
    if isinstance(data, tuple):
        if not 1 <= len(data) <= 3 or (targets and len(data) < 2):
            raise _checks.invalid_described(name, expected, f"a tuple of {len(data)}")
        x, y, sample_weight = (*data, None, None)[:3]
    else:
        if targets:
            raise _checks.invalid_described(name, expected, f"a {type(data).__name__}")
        x, y, sample_weight = data, None, None
    sizes = set()
    for part, label in ((x, "x"), (y, "y"), (sample_weight, "sample_weight")):
        if part is None:
            if label == "x" or (label == "y" and targets):
                raise _checks.invalid_described(name, expected, f"{label}=None")
            continue
        for leaf in keras.tree.flatten(part):
            shape = getattr(leaf, "shape", None)
            if shape is None or len(shape) == 0:
                raise _checks.invalid_described(
                    name, expected, f"a {type(leaf).__name__} in {label}"
                )
            sizes.add(int(shape[0]))
    if len(sizes) != 1 or 0 in sizes:
        raise _checks.invalid_described(
            name, expected, f"sample counts {sorted(sizes)}"
        )
    return x, y, sample_weight


def check_layer_names(value: Any) -> tuple[str, ...] | None:
    """None or a non-empty sequence of layer names."""
    if value is None:
        return None
    expected = "None or a non-empty list of layer names"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise _checks.invalid("layers", expected, value)
    if not all(isinstance(name, str) for name in value):
        raise _checks.invalid("layers", expected, value)
    return tuple(value)


def select_layers(
    model: keras.Model,
    names: tuple[str, ...] | None,
    candidates: list[keras.layers.Layer],
    description: str,
) -> list[keras.layers.Layer]:
    """The candidate layers named by `names` (all of them when None), model order."""
    if names is None:
        return list(candidates)
    by_name = {layer.name: layer for layer in candidates}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise _checks.invalid(
            "layers",
            f"names of {description} of the model ({sorted(by_name)}); not found: "
            f"{unknown}",
            list(names),
        )
    wanted = set(names)
    return [layer for layer in candidates if layer.name in wanted]


def sync(model: keras.Model) -> None:
    """Puts JAX's `fit` state back into the variables (a no-op elsewhere)."""
    # JAX's `fit` keeps the values outside the variables between batches.
    state_sync = getattr(model, "jax_state_sync", None)
    if state_sync is not None:
        state_sync()


class RandomState:
    """Every RNG state a probe could consume, captured now; `restore()` puts it back.

    The seed-generator states of the model's layers and Keras' global one
    (bit-exact `VariableSnapshot`s), and the backend's own global generator,
    which Keras' torch backend uses for an unseeded `Dropout`.
    """

    def __init__(self, model: keras.Model) -> None:
        generator = _keras_internals.global_seed_generator()
        states = [
            variable
            for variable in model.non_trainable_variables
            if variable.name == "seed_generator_state"
        ]
        if generator is not None:
            states.append(generator.state)
        self._seeds = VariableSnapshot(states)
        self._restore_native = _rng.native_state()

    def restore(self) -> None:
        self._seeds.restore()
        self._restore_native()


def to_float64(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


class Schedule:
    """Which epochs or batches record: index `k` of a `fit` when `k % every == 0`.

    Epochs are indexed as `fit` numbers them (from `initial_epoch`), batches
    from 0 at the start of each `fit`, across epochs (as TensorBoard's
    `histogram_freq` counts epochs).
    """

    def __init__(self, every: int, per: str) -> None:
        self.every = every
        self.per = per
        self.batch = 0

    def reset(self) -> None:
        self.batch = 0

    def epoch_records(self, epoch: int) -> bool:
        return self.per == "epoch" and epoch % self.every == 0

    def batch_records(self) -> bool:
        """Whether the current batch records (call before `advance`)."""
        return self.per == "batch" and self.batch % self.every == 0

    def advance(self) -> None:
        self.batch += 1


def config_with_data(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` checked to hold the `"data"` entry that `get_config` leaves out."""
    if not isinstance(config, dict) or "data" not in config:
        keys = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise _checks.invalid_described(
            "config",
            f"a `{class_name}.get_config()` dict with a `data` entry added (the "
            f"probe batch is not serialised: `{class_name}.from_config("
            '{**config, "data": probe_batch})`)',
            f"keys {keys}",
        )
    return dict(config)
