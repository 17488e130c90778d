"""Per-layer activation statistics and histograms on a fixed probe batch."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kerasx import _checks
from kerasx.callbacks import _probe
from kerasx.ops import _gradients

ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.ELU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.Softmax,
)
SATURATING = ("sigmoid", "tanh")


def _single_output(layer: keras.layers.Layer) -> bool:
    try:
        return len(keras.tree.flatten(layer.output)) == 1
    except (AttributeError, ValueError):  # never called, or called several times
        return False


def _symbolic_inputs(model: keras.Model) -> Any:
    """The model's symbolic inputs, in the structure it is called with; or None."""
    for attribute in ("input", "inputs"):
        try:
            inputs = getattr(model, attribute)
        except (AttributeError, ValueError):
            continue
        if isinstance(inputs, list) and len(inputs) == 1:
            return inputs[0]
        if inputs is not None:
            return inputs
    return None


def _saturating_activation(layer: keras.layers.Layer) -> str | None:
    """`"sigmoid"` or `"tanh"` when `layer` ends in that activation, else None."""
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return name if name in SATURATING else None


def _check_range(value: Any) -> tuple[float, float]:
    expected = "a pair of finite floats (low, high) with 0 <= low < high"
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise _checks.invalid("hist_range", expected, value)
    if len(value) != 2 or not all(_checks.is_real(v) and np.isfinite(v) for v in value):
        raise _checks.invalid("hist_range", expected, value)
    low, high = float(value[0]), float(value[1])
    if not 0 <= low < high:
        raise _checks.invalid("hist_range", expected, value)
    return low, high


@keras.saving.register_keras_serializable(package="kerasx")
class ActivationStats(keras.callbacks.Callback):
    """Records per-layer activation statistics and histograms, as fastai does.

    At the end of every `every`-th epoch (`per="epoch"`) or batch
    (`per="batch"`), the probe batch `data` is run through the model at the
    current weights and, for the output `a` of each watched layer (all its
    elements, batch included, in float64), the callback records

    * `act_mean/<layer>`: the mean of `a`;
    * `act_std/<layer>`: its standard deviation (`numpy.std`, `ddof=0`;
      fastai's `torch.std` divides by `n - 1`);
    * `act_near_zero/<layer>`: the fraction with `|a| <= near_zero` (dead
      ReLUs; fastai's `near_zero` counts `a <= 0.05`, the same for ReLU
      outputs);
    * `act_saturated/<layer>`, for layers whose activation is `sigmoid` or
      `tanh` only: the fraction within `1 - saturation` of an asymptote, i.e.
      `|a| >= saturation` for tanh and `|2a - 1| >= saturation` for sigmoid
      (with the default 0.99: `a <= 0.005` or `a >= 0.995`). There the
      activation's derivative is below `1 - saturation**2` (2 %) of its
      maximum, so almost no gradient flows back;
    * a histogram of `|a|`: `bins` equal bins over the fixed range
      `hist_range` (default `[0, 10]`, fastai's `histc(40, 0, 10)` of
      absolute activations in its "colorful dimension"; values outside are
      not counted, the last bin includes its right edge). The range is the
      same at every step, so the histograms of successive steps line up as the
      columns of `kerasx.plotting.plot_activation_stats`; for sigmoid or tanh
      networks use `hist_range=(0, 1)`.

    The scalars go into `logs` (so `History`, `CSVLogger` and `TensorBoard`
    after this callback see them; with `per="batch"` only the batch-level
    callbacks do) and into `.history`; the histograms are kept in
    `.histograms`. The watched layers are, by default, the model's top-level
    layers with weights (their output includes a fused activation, as in
    `Dense(100, activation="relu")`) and its activation layers (`Activation`,
    `ReLU`, `ELU`, `LeakyReLU`, `PReLU`, `Softmax`); the model must be
    Functional or Sequential, since the outputs are read from the layers'
    symbolic outputs.

    The forward pass runs inside a `keras.StatelessScope`, so
    BatchNormalization statistics, seed generators and metrics do not move
    (the seed-generator states are also restored bit-exactly). Everything is
    reset when training begins.

    Args:
        data: The probe batch of inputs `x` (an array, or a list or dict of
            arrays), or a tuple `(x, y[, sample_weight])` whose targets are
            ignored. Not serialised (see `get_config`).
        every: Record every `every`-th epoch or batch, counted from the first
            one of each `fit` (index `k` records when `k % every == 0`).
        bins: Number of histogram bins.
        per: `"epoch"` or `"batch"`. fastai records every training batch:
            `per="batch"` draws the same picture.
        layers: Names of the layers to watch; None for the default above.
        training: The `training` flag of the probe's forward pass (dropout
            active and BatchNormalization on batch statistics when True, as
            fastai's hooks see the training batches).
        hist_range: `(low, high)` of the histogram of `|a|`, `0 <= low < high`.
        near_zero: The `|a|` at or below which an activation counts as near
            zero, a float >= 0 (fastai: 0.05).
        saturation: The saturation threshold on the tanh scale, in (0, 1).

    Attributes:
        history: `{key: [value, ...]}` of every recorded step.
        histograms: `{layer: [counts, ...]}`, one integer array of `bins`
            counts per recorded step.
        bin_edges: The `bins + 1` edges of the histogram bins.
        steps: The epoch (or batch) index of each recorded step.
        layer_names: The watched layers, in model order.

    Raises:
        ValueError: If `data` is not a probe batch (arrays, or a tuple
            `(x, y[, sample_weight])`, with the same number >= 1 of samples
            everywhere); if `every` or `bins` is not an integer >= 1; if
            `per` is not `"epoch"` or `"batch"`; if `layers` is not None or a
            non-empty list of strings; if `training` is not a bool; if
            `hist_range` is not a pair of finite floats with
            `0 <= low < high`; if `near_zero` is not a float >= 0; if
            `saturation` is not a float in (0, 1). When training begins: if
            the model has no symbolic inputs (a subclassed model); if a name
            in `layers` is not a watchable layer of the model.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.callbacks import ActivationStats
    >>> model = keras.Sequential([keras.Input((2,)),
    ...     keras.layers.Dense(3, activation="relu", name="hidden"),
    ...     keras.layers.Dense(1, name="out")])
    >>> model.compile("sgd", "mse")
    >>> x = np.array([[1.0, -1.0], [2.0, 0.5]], "float32")
    >>> stats = ActivationStats(x, bins=4, hist_range=(0.0, 4.0))
    >>> _ = model.fit(x, np.zeros((2, 1)), epochs=1, callbacks=[stats], verbose=0)
    >>> int(stats.histograms["hidden"][0].sum())  # 2 samples x 3 units
    6
    >>> sorted(stats.history)[:2]
    ['act_mean/hidden', 'act_mean/out']

    ```

    Reference:
        - fastai `ActivationStats` (`fastai.callback.hook`) and the "colorful
          dimension" of the 2022 fastai course (lesson 16, `miniai`:
          `acts.abs().histc(40, 0, 10)`, drawn as `log1p` of the counts).
        - Glorot & Bengio, AISTATS 2010 (saturated sigmoid layers).
    """

    def __init__(
        self,
        data: Any,
        every: int = 1,
        bins: int = 40,
        *,
        per: str = "epoch",
        layers: list[str] | None = None,
        training: bool = True,
        hist_range: tuple[float, float] = (0.0, 10.0),
        near_zero: float = 0.05,
        saturation: float = 0.99,
    ) -> None:
        super().__init__()
        self.x, _, _ = _probe.check_data("data", data, targets=False)
        self.data = data
        self.every = _checks.integer("every", every, minimum=1)
        self.bins = _checks.integer("bins", bins, minimum=1)
        self.per = _checks.choice("per", per, _probe.PER_OPTIONS)
        # Keras dispatches batch callbacks asynchronously (without waiting for
        # each step's logs) only when every callback is safe for it; with
        # per="epoch" the batch hooks do nothing.
        self.async_safe = self.per == "epoch"
        self.layers = _probe.check_layer_names(layers)
        self.training = _checks.boolean("training", training)
        self.hist_range = _check_range(hist_range)
        self.near_zero = _checks.number("near_zero", near_zero, low=0)
        self.saturation = _checks.number(
            "saturation", saturation, low=0, high=1, low_open=True, high_open=True
        )
        self.bin_edges = np.linspace(*self.hist_range, self.bins + 1)
        self._schedule = _probe.Schedule(self.every, self.per)
        self.history: dict[str, list[float]] = {}
        self.histograms: dict[str, list[np.ndarray]] = {}
        self.steps: list[int] = []
        self.layer_names: list[str] = []

    def on_train_begin(self, logs=None):
        model = self.model
        inputs = _symbolic_inputs(model)
        if inputs is None:
            raise _checks.invalid_described(
                "model",
                "a Functional or Sequential model with known inputs "
                "(ActivationStats reads its layers' symbolic outputs)",
                f"a {type(model).__name__} without symbolic inputs",
            )
        candidates = [
            layer
            for layer in model.layers
            if (layer.weights or isinstance(layer, ACTIVATION_LAYERS))
            and _single_output(layer)
        ]
        selected = _probe.select_layers(
            model,
            self.layers,
            candidates,
            "layers with weights or activation layers, called once,",
        )
        self.layer_names = [layer.name for layer in selected]
        self._saturating = {
            layer.name: _saturating_activation(layer) for layer in selected
        }
        self._features = keras.Model(inputs, [layer.output for layer in selected])
        self._x = keras.tree.map_structure(keras.ops.convert_to_tensor, self.x)
        self._forward = _gradients.compiled_function(self._forward_fn)
        self._schedule.reset()
        self.history, self.steps = {}, []
        self.histograms = {name: [] for name in self.layer_names}

    def on_epoch_end(self, epoch, logs=None):
        if self._schedule.epoch_records(epoch):
            self._record(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if self._schedule.batch_records():
            self._record(self._schedule.batch, logs)
        if self._schedule.per == "batch":
            self._schedule.advance()

    def _forward_fn(self, trainable_values, non_trainable_values):
        features = self._features
        mapping = [
            *zip(features.trainable_variables, trainable_values, strict=True),
            *zip(features.non_trainable_variables, non_trainable_values, strict=True),
        ]
        with keras.StatelessScope(state_mapping=mapping):
            return keras.tree.flatten(features(self._x, training=self.training))

    def activations(self) -> dict[str, np.ndarray]:
        """`{layer: output}` of the watched layers on the probe, now (float64).

        The model must have been trained with this callback (`on_train_begin`
        ran).
        """
        _probe.sync(self.model)
        seeds = _probe.RandomState(self.model)
        try:
            features = self._features
            outputs = self._forward(
                [v.value for v in features.trainable_variables],
                [v.value for v in features.non_trainable_variables],
            )
            return {
                name: _probe.to_float64(output)
                for name, output in zip(self.layer_names, outputs, strict=True)
            }
        finally:
            seeds.restore()

    def statistics(self, name: str, a: np.ndarray) -> dict[str, float]:
        """The scalar statistics of the output `a` of layer `name`."""
        magnitude = np.abs(a)
        values = {
            f"act_mean/{name}": float(np.mean(a)),
            f"act_std/{name}": float(np.std(a)),
            f"act_near_zero/{name}": float(np.mean(magnitude <= self.near_zero)),
        }
        kind = self._saturating.get(name)
        if kind is not None:
            scaled = magnitude if kind == "tanh" else np.abs(2.0 * a - 1.0)
            values[f"act_saturated/{name}"] = float(np.mean(scaled >= self.saturation))
        return values

    def _record(self, step: int, logs) -> None:
        values = {}
        for name, a in self.activations().items():
            values.update(self.statistics(name, a))
            counts, _ = np.histogram(np.abs(a), bins=self.bin_edges)
            self.histograms[name].append(counts)
        if logs is not None:
            logs.update(values)
        self.steps.append(step)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def get_config(self) -> dict[str, Any]:
        """Every argument but `data`: the probe arrays are not serialised."""
        return {
            "every": self.every,
            "bins": self.bins,
            "per": self.per,
            "layers": None if self.layers is None else list(self.layers),
            "training": self.training,
            "hist_range": list(self.hist_range),
            "near_zero": self.near_zero,
            "saturation": self.saturation,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ActivationStats:
        """Rebuilds the callback from `get_config()` plus a `"data"` entry.

        `ActivationStats.from_config({**config, "data": x})`: the probe batch
        is not part of the config, so it must be added.
        """
        return cls(**_probe.config_with_data(cls.__name__, config))
