"""Per-layer gradient norms and update/weight ratios on a fixed probe batch."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import keras
import numpy as np

from kerasx import _checks
from kerasx.callbacks import _probe
from kerasx.ops import _gradients

NORMS_OPTIONS = ("variable", "layer", "global")
GLOBAL = "global"


def _ratio(numerator: float, denominator: float) -> float:
    """`numerator / denominator` with 0 / 0 = 0 and x / 0 = inf."""
    if denominator == 0:
        return 0.0 if numerator == 0 else math.inf
    return numerator / denominator


def _variable_keys(layer: keras.layers.Layer) -> list[str]:
    """`<layer>/<variable>` for each trainable variable of `layer`, unique."""
    keys = []
    for variable in layer.trainable_variables:
        path = variable.path
        prefix = f"{layer.name}/"
        start = path.find(prefix)
        key = path[start:] if start >= 0 else f"{layer.name}/{variable.name}"
        while key in keys:
            key += "_"
        keys.append(key)
    return keys


@keras.saving.register_keras_serializable(package="kerasx")
class GradientStats(keras.callbacks.Callback):
    """Logs the loss gradient's L2 norms and the update/weight ratios per layer.

    At the end of every `every`-th epoch (`per="epoch"`) or batch
    (`per="batch"`), the gradient of the model's compiled loss (with its
    regularization losses, as `fit` computes it, without loss scaling) is
    computed on the fixed probe batch `data` at the current weights, by the
    backend's own autodiff (`tf.GradientTape`, `jax.value_and_grad`,
    `torch.autograd.grad`) outside `fit`'s compiled step. With `g_v` the
    gradient of trainable variable `v`, the callback records

    * `grad_norm/<layer>/<variable>`: `||g_v||_2` (with `norms="variable"`);
    * `grad_norm/<layer>`: `sqrt(sum_{v in layer} ||g_v||^2)`;
    * `grad_norm/global`: the same over every trainable variable of the model
      (what `clipnorm`-style global clipping measures);
    * `update_ratio/<layer>[/<variable>]` and `update_ratio/global`:
      `||w_end - w_start|| / ||w_start||` over the same variables, where
      `w_start` are the weights when the recorded epoch (or batch) began and
      `w_end` when it ended (`0 / 0 = 0`, `x / 0 = inf`, e.g. a zero-initialised
      bias). Ratios around `1e-3` per step are the usual rule of thumb.

    Norms are computed in float64 from the backend's gradients. The values are
    written into `logs`, so `History`, `CSVLogger` and `TensorBoard` placed
    after this callback in the `callbacks` list see them (with `per="batch"`,
    only the batch-level callbacks do: `History` keeps epoch logs), and kept in
    `.history` (one list per key, plus `"probe_loss"`) with the matching
    epoch or batch indices in `.steps`. Keys appear only in the epochs that
    record (every epoch with `every=1`). Everything is reset when training
    begins.

    The probe leaves everything as it was: the forward pass runs inside a
    `keras.StatelessScope`, so BatchNormalization statistics, dropout and noise
    seed generators (which a `training=True` pass consumes) and metrics do not
    move, and the seed-generator states are restored bit-exactly afterwards;
    weights, optimizer variables and `iterations` are never assigned.

    Warnings, once per `fit` each, naming the layers: *vanishing* when the
    gradient norm of the first hidden layer (the first layer with trainable
    weights) is below `vanishing_ratio` times that of the last hidden layer
    (the one before the last layer with trainable weights; needs three such
    layers); *exploding* when it is above `exploding_ratio` times; and
    *non-finite* when a layer's gradient holds inf or NaN.

    Args:
        data: The probe batch, a tuple `(x, y)` or `(x, y, sample_weight)` of
            arrays (`x` may be a list or dict of arrays for a multi-input
            model), used as one batch: keep it small (a few hundred samples).
            Not serialised (see `get_config`).
        every: Record every `every`-th epoch or batch, counted from the first
            one of each `fit` (index `k` records when `k % every == 0`).
        per: `"epoch"` (at the end of recorded epochs) or `"batch"` (at the
            end of recorded batches; costs one forward and backward pass of
            the probe batch each time).
        layers: Names of the layers to log (layers with trainable weights);
            None logs every such layer. The global norm always covers the whole
            model.
        training: The `training` flag of the probe's forward pass (dropout
            active and BatchNormalization on batch statistics when True, as in
            `fit`).
        norms: What to log: `"variable"` (per variable, per layer and global),
            `"layer"` (per layer and global) or `"global"` (only the global
            norm and ratio).
        vanishing_ratio: Threshold of the vanishing warning, a float in
            (0, 1), or None for no such warning.
        exploding_ratio: Threshold of the exploding warning, a float > 1, or
            None for no such warning.

    Attributes:
        history: `{key: [value, ...]}` of every recorded step.
        steps: The epoch (or batch) index of each recorded step.
        layer_names: The logged layers, in model order.

    Raises:
        ValueError: If `data` is not a tuple `(x, y)` or
            `(x, y, sample_weight)` of arrays with the same number >= 1 of
            samples; if `every` is not an integer >= 1; if `per` is not
            `"epoch"` or `"batch"`; if `layers` is not None or a non-empty
            list of strings; if `training` is not a bool; if `norms` is not
            `"variable"`, `"layer"` or `"global"`; if `vanishing_ratio` is
            not None or a float in (0, 1), or `exploding_ratio` not None or a
            float > 1. When training begins: if the model was compiled
            without a loss (and does not override `compute_loss`), has no
            trainable weights, or has a layer named `"global"`; if a name in
            `layers` is not a layer with trainable weights.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.callbacks import GradientStats
    >>> model = keras.Sequential([keras.Input((3,)),
    ...     keras.layers.Dense(4, activation="relu", name="hidden"),
    ...     keras.layers.Dense(1, name="out")])
    >>> model.compile(keras.optimizers.SGD(0.01), "mse")
    >>> x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
    >>> stats = GradientStats((x, y), norms="layer")
    >>> history = model.fit(x, y, epochs=2, callbacks=[stats], verbose=0)
    >>> sorted(key for key in history.history if key.startswith("grad_norm"))
    ['grad_norm/global', 'grad_norm/hidden', 'grad_norm/out']
    >>> stats.steps
    [0, 1]

    ```

    Reference:
        - Glorot & Bengio, "Understanding the difficulty of training deep
          feedforward neural networks", AISTATS 2010 (per-layer gradient norms).
        - PyTorch Lightning `grad_norm` logging (`grad_{norm_type}_norm/<name>`
          and a total norm).
    """

    def __init__(
        self,
        data: Any,
        every: int = 1,
        per: str = "epoch",
        layers: list[str] | None = None,
        training: bool = True,
        *,
        norms: str = "variable",
        vanishing_ratio: float | None = 1e-2,
        exploding_ratio: float | None = 1e2,
    ) -> None:
        super().__init__()
        self.x, self.y, self.sample_weight = _probe.check_data(
            "data", data, targets=True
        )
        self.data = data
        self.every = _checks.integer("every", every, minimum=1)
        self.per = _checks.choice("per", per, _probe.PER_OPTIONS)
        # Keras dispatches batch callbacks asynchronously (without waiting for
        # each step's logs) only when every callback is safe for it; with
        # per="epoch" the batch hooks do nothing.
        self.async_safe = self.per == "epoch"
        self.layers = _probe.check_layer_names(layers)
        self.training = _checks.boolean("training", training)
        self.norms = _checks.choice("norms", norms, NORMS_OPTIONS)
        self.vanishing_ratio = _checks.number(
            "vanishing_ratio",
            vanishing_ratio,
            low=0,
            high=1,
            low_open=True,
            high_open=True,
            allow_none=True,
        )
        self.exploding_ratio = _checks.number(
            "exploding_ratio", exploding_ratio, low=1, low_open=True, allow_none=True
        )
        self._schedule = _probe.Schedule(self.every, self.per)
        self.history: dict[str, list[float]] = {}
        self.steps: list[int] = []
        self.layer_names: list[str] = []
        self._weights_before = None

    # -- setup ---------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        overridden = type(model).compute_loss is not keras.Model.compute_loss
        if getattr(model, "loss", None) is None and not overridden:
            raise _checks.invalid_described(
                "model",
                "a model compiled with a loss (GradientStats differentiates it)",
                "a model compiled without a loss",
            )
        weighted = [layer for layer in model.layers if layer.trainable_variables]
        if not weighted:
            raise _checks.invalid_described(
                "model", "a model with trainable weights", "no trainable weights"
            )
        if any(layer.name == GLOBAL for layer in weighted):
            raise _checks.invalid_described(
                "model",
                f"no layer named {GLOBAL!r} (the key of the global norm)",
                f"a layer named {GLOBAL!r}",
            )
        self._weighted = weighted
        selected = _probe.select_layers(
            model, self.layers, weighted, "layers with trainable weights"
        )
        self.layer_names = [layer.name for layer in selected]
        self._variables = list(model.trainable_variables)
        position = {id(variable): i for i, variable in enumerate(self._variables)}
        self._members = {
            layer.name: [position[id(v)] for v in layer.trainable_variables]
            for layer in weighted
        }
        self._variable_keys = {
            layer.name: list(
                zip(_variable_keys(layer), self._members[layer.name], strict=True)
            )
            for layer in selected
        }
        self._tensors = tuple(
            None
            if part is None
            else keras.tree.map_structure(keras.ops.convert_to_tensor, part)
            for part in (self.x, self.y, self.sample_weight)
        )
        self._loss_takes_training = (
            "training" in inspect.signature(model.compute_loss).parameters
        )
        self._gradient_function = _gradients.gradient_function(self._loss_fn)
        self._schedule.reset()
        self.history, self.steps = {}, []
        self._warned: set[str] = set()
        self._weights_before = None

    # -- schedule ------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        if self._schedule.epoch_records(epoch):
            self._weights_before = self._current_weights()

    def on_epoch_end(self, epoch, logs=None):
        if self._schedule.epoch_records(epoch):
            self._record(epoch, logs, f"epoch {epoch}")

    def on_train_batch_begin(self, batch, logs=None):
        if self._schedule.batch_records():
            _probe.sync(self.model)
            self._weights_before = self._current_weights()

    def on_train_batch_end(self, batch, logs=None):
        if self._schedule.batch_records():
            step = self._schedule.batch
            self._record(step, logs, f"batch {step}")
        if self._schedule.per == "batch":
            self._schedule.advance()

    # -- computation ---------------------------------------------------------

    def _current_weights(self) -> list[np.ndarray]:
        return [_probe.to_float64(variable) for variable in self._variables]

    def _loss_fn(self, trainable_values, non_trainable_values):
        model = self.model
        x, y, sample_weight = self._tensors
        mapping = [
            *zip(self._variables, trainable_values, strict=True),
            *zip(model.non_trainable_variables, non_trainable_values, strict=True),
        ]
        with keras.StatelessScope(state_mapping=mapping):
            y_pred = model(x, training=self.training)
            if self._loss_takes_training:
                return model.compute_loss(
                    x, y, y_pred, sample_weight, training=self.training
                )
            return model.compute_loss(x, y, y_pred, sample_weight)

    def gradients(self) -> tuple[float, list[np.ndarray]]:
        """`(loss, [gradient of each trainable variable])` on the probe, now.

        NumPy float64 arrays in the order of `model.trainable_variables`; the
        model must have been trained with this callback (`on_train_begin` ran).
        """
        _probe.sync(self.model)
        seeds = _probe.RandomState(self.model)
        try:
            values = [variable.value for variable in self._variables]
            others = [v.value for v in self.model.non_trainable_variables]
            loss, grads = self._gradient_function(values, others)
            return float(_probe.to_float64(loss)), [_probe.to_float64(g) for g in grads]
        finally:
            seeds.restore()

    def _record(self, step: int, logs, where: str) -> None:
        loss, grads = self.gradients()
        squares = [float(np.sum(np.square(g))) for g in grads]
        weights_after = self._current_weights()
        before = self._weights_before or weights_after
        update_squares = [
            float(np.sum(np.square(a - b)))
            for a, b in zip(weights_after, before, strict=True)
        ]
        weight_squares = [float(np.sum(np.square(b))) for b in before]

        def norm(indices, values):
            return math.sqrt(sum(values[i] for i in indices))

        def ratio(indices):
            return _ratio(norm(indices, update_squares), norm(indices, weight_squares))

        everything = range(len(grads))
        values = {
            "grad_norm/global": norm(everything, squares),
            "update_ratio/global": ratio(everything),
        }
        if self.norms != "global":
            for name in self.layer_names:
                members = self._members[name]
                values[f"grad_norm/{name}"] = norm(members, squares)
                values[f"update_ratio/{name}"] = ratio(members)
                if self.norms == "variable":
                    for key, i in self._variable_keys[name]:
                        values[f"grad_norm/{key}"] = math.sqrt(squares[i])
                        values[f"update_ratio/{key}"] = ratio([i])
        layer_norms = {
            layer.name: norm(self._members[layer.name], squares)
            for layer in self._weighted
        }
        self._warn(layer_norms, where)
        if logs is not None:
            logs.update(values)
        self.steps.append(step)
        for key, value in {**values, "probe_loss": loss}.items():
            self.history.setdefault(key, []).append(value)
        self._weights_before = None

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(f"GradientStats: {message}", stacklevel=3)

    def _warn(self, layer_norms: dict[str, float], where: str) -> None:
        bad = [name for name, value in layer_norms.items() if not math.isfinite(value)]
        if bad:
            shown = ", ".join(f"`{name}`" for name in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            self._warn_once(
                "non-finite",
                f"non-finite gradients at {where} in layer(s) {shown}{more}. "
                "Lower the learning rate, clip gradients or check the inputs.",
            )
            return
        if len(self._weighted) < 3:
            return
        first, last = self._weighted[0].name, self._weighted[-2].name
        first_norm, last_norm = layer_norms[first], layer_norms[last]
        if last_norm == 0:
            return
        ratio = first_norm / last_norm
        comparison = (
            f"the gradient norm of the first hidden layer `{first}` "
            f"({first_norm:.3g}) is {ratio:.3g} times that of the last hidden "
            f"layer `{last}` ({last_norm:.3g})"
        )
        if self.vanishing_ratio is not None and ratio < self.vanishing_ratio:
            self._warn_once(
                "vanishing",
                f"vanishing gradients at {where}: {comparison}, below "
                f"vanishing_ratio={self.vanishing_ratio:g}.",
            )
        if self.exploding_ratio is not None and ratio > self.exploding_ratio:
            self._warn_once(
                "exploding",
                f"exploding gradients at {where}: {comparison}, above "
                f"exploding_ratio={self.exploding_ratio:g}.",
            )

    # -- serialization -------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Every argument but `data`: the probe arrays are not serialised."""
        return {
            "every": self.every,
            "per": self.per,
            "layers": None if self.layers is None else list(self.layers),
            "training": self.training,
            "norms": self.norms,
            "vanishing_ratio": self.vanishing_ratio,
            "exploding_ratio": self.exploding_ratio,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GradientStats:
        """Rebuilds the callback from `get_config()` plus a `"data"` entry.

        `GradientStats.from_config({**config, "data": (x, y)})`: the probe
        batch is not part of the config, so it must be added.
        """
        return cls(**_probe.config_with_data(cls.__name__, config))
