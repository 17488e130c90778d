"""An optimizer that trains groups of variables at multiples of one learning rate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kerasx import _checks

#: The optimizers whose per-group rates are tested equal to one optimizer per
#: group (their update of a variable reads only that variable's gradient and slots).
EXACT_OPTIMIZERS = (
    keras.optimizers.SGD,
    keras.optimizers.Adam,
    keras.optimizers.AdamW,
    keras.optimizers.Nadam,
    keras.optimizers.Adamax,
)
_EXACT_NAMES = "SGD (momentum and nesterov included), Adam, AdamW, Nadam or Adamax"

# Settings that couple the variables of different groups, or that the wrapper
# would have to apply itself, so that one inner optimizer per group would not
# be exact. (`gradient_accumulation_steps` is exact: every inner copy
# accumulates its own variables' gradients and updates on the same step.)
_COUPLING_SETTINGS = {
    "global_clipnorm": None,
    "use_ema": False,
    "loss_scale_factor": None,
}


def check_exact_optimizer(optimizer: Any, argument: str = "optimizer") -> None:
    """Raises unless per-group rates on `optimizer` are exact."""
    # Keras' own classes only (on torch they are backend subclasses); a user
    # subclass may change the update.
    own_class = type(optimizer).__module__.startswith("keras.")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise _checks.invalid(
            argument,
            f"a Keras {_EXACT_NAMES} optimizer, not a LossScaleOptimizer (one loss "
            "scale per group would skip different steps in different groups); wrap "
            "the LayerRateOptimizer instead: LossScaleOptimizer(LayerRateOptimizer("
            "...)), which `compile` does itself under the mixed_float16 policy",
            optimizer,
        )
    if not (isinstance(optimizer, EXACT_OPTIMIZERS) and own_class):
        raise _checks.invalid(
            argument,
            f"a Keras {_EXACT_NAMES} optimizer, for which per-group learning rates "
            "are exact (other classes are refused)",
            optimizer,
        )
    for setting, default in _COUPLING_SETTINGS.items():
        value = getattr(optimizer, setting)
        if value != default and value is not None:
            raise _checks.invalid(
                f"{argument}.{setting}",
                f"{default} (it couples the variables of different groups, so "
                "per-group learning rates would not be exact)",
                value,
            )


def _same_variable(entry: str, path: str) -> bool:
    """Whether group entry `entry` names the variable at `path`.

    Equal, or one ends with the other at a `/`: Keras prefixes the variables of
    a Sequential model built in place with the model's name
    (`sequential/dense/kernel`) and not those of the same model loaded from a
    file (`dense/kernel`).
    """
    return entry == path or path.endswith(f"/{entry}") or entry.endswith(f"/{path}")


@keras.saving.register_keras_serializable(package="kerasx")
class LayerRateOptimizer(keras.optimizers.Optimizer):
    """Trains groups of variables at multiples of one learning rate.

    fastai's discriminative learning rates on a Keras optimizer: variable `v`
    of group `i` is updated as a separate copy of `optimizer` would update it
    with learning rate `multipliers[i] * learning_rate`; variables in no group
    train at `learning_rate` (multiplier 1). The wrapper holds one inner copy of
    `optimizer` (built from its config) per group plus one for the rest, routes
    each variable to its group's copy, and before every step sets each copy's
    rate to its multiple of this optimizer's own `learning_rate` variable. So a
    schedule that assigns `optimizer.learning_rate` each step (kerasx's
    `OneCycleScheduler`, Keras' `LearningRateScheduler`) moves every group
    together, and the result equals one optimizer per group to float32
    rounding of the product `multiplier * learning_rate`.

    Only optimizers whose update of a variable reads nothing but that
    variable's gradient and state are accepted: SGD (with momentum, nesterov),
    Adam, AdamW (its weight decay scales with the group's rate, as a separate
    AdamW's would), Nadam and Adamax, with per-variable `clipnorm` / `clipvalue`
    allowed; `global_clipnorm`, `use_ema` and `loss_scale_factor` are refused,
    since they couple groups (or would need the wrapper to scale the loss).
    `gradient_accumulation_steps` is allowed: every inner copy accumulates the
    gradients of its own variables and all of them update on the same batch,
    with the rate this optimizer holds on that batch, as separate optimizers
    with the same setting would; this optimizer's `iterations` then counts
    applied updates (batches // steps), as Keras' optimizers do, so per-step
    schedules advance once per update. Each inner copy counts its own
    `iterations` (the same number).

    Mixed precision: wrap this optimizer, not the template, in a
    `keras.optimizers.LossScaleOptimizer` (`compile` does it under the
    `"mixed_float16"` policy): one loss scale for all groups, so a step with a
    non-finite gradient is skipped in every group, and the unscaled gradients
    reach each group's copy, which updates the float32 variables as one
    loss-scaled optimizer per group would. A loss-scaled template is refused
    (one scale per group would skip steps in some groups only).

    Args:
        optimizer: The template: a Keras SGD, Adam, AdamW, Nadam or Adamax
            instance (not built). Its `learning_rate` (a float or a
            `LearningRateSchedule`) is this optimizer's rate.
        groups: A list of groups, each a list of variable paths
            (`variable.path`, e.g. `[v.path for v in base.trainable_weights]`).
            A path also names a variable whose path ends with it, or with which
            it ends, at a `/` (Keras drops a Sequential model's name from its
            variable paths when the model is loaded from a file); a path that
            names several variables is refused when the optimizer is built.
        multipliers: One float > 0 per group.
        name: The optimizer's name.

    Raises:
        ValueError: If `optimizer` is a `LossScaleOptimizer`, is not an
            instance of Keras' own SGD, Adam, AdamW, Nadam or Adamax (a
            subclass is refused too), sets `global_clipnorm`, `use_ema` or
            `loss_scale_factor`, or is already built; if `groups` is not a
            list of lists of strings, or repeats a path; if `multipliers` is
            not a list with one float > 0 per group. When the optimizer is
            built (on the first step): if a path names several variables, or
            a variable is named in several groups.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.transfer import LayerRateOptimizer
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> kernel = model.layers[0].kernel
    >>> optimizer = LayerRateOptimizer(
    ...     keras.optimizers.SGD(0.1), groups=[[kernel.path]], multipliers=[0.5])
    >>> model.compile(optimizer, "mse")
    >>> _ = model.layers[0].kernel.assign(np.zeros((2, 1)))
    >>> _ = model.train_on_batch(np.ones((1, 2)), np.ones((1, 1)))
    >>> # dL/dk = dL/db = -2 * (1 - 0): kernel -0.05 * dL/dk, bias -0.1 * dL/db
    >>> model.layers[0].kernel.numpy().ravel().astype(float).round(6).tolist()
    [0.1, 0.1]
    >>> model.layers[0].bias.numpy().astype(float).round(6).tolist()
    [0.2]

    ```

    Reference:
        - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146), "Universal
          Language Model Fine-tuning" (discriminative fine-tuning).
        - fastai `Learner.fit_one_cycle(lr_max=slice(...))`, `Optimizer` param groups.
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        groups: Sequence[Sequence[str]],
        multipliers: Sequence[float],
        name: str | None = None,
    ) -> None:
        check_exact_optimizer(optimizer)
        if optimizer.built:
            raise _checks.invalid(
                "optimizer",
                "an optimizer that is not built yet (its copies are made from its "
                "config, so the state of a built one would be lost)",
                optimizer,
            )
        if not isinstance(groups, (list, tuple)) or not all(
            isinstance(group, (list, tuple))
            and all(isinstance(path, str) for path in group)
            for group in groups
        ):
            raise _checks.invalid(
                "groups", "a list of lists of variable paths (strings)", groups
            )
        groups = [list(group) for group in groups]
        paths = [path for group in groups for path in group]
        repeated = sorted({path for path in paths if paths.count(path) > 1})
        if repeated:
            raise _checks.invalid(
                "groups",
                f"each variable path in one group only; repeated: {repeated}",
                groups,
            )
        if not isinstance(multipliers, (list, tuple)) or len(multipliers) != len(
            groups
        ):
            raise _checks.invalid(
                "multipliers",
                f"a list of {len(groups)} floats > 0 (one per group)",
                multipliers,
            )
        multipliers = [
            _checks.number(
                "multipliers", value, low=0, low_open=True, expected="floats > 0"
            )
            for value in multipliers
        ]
        config = optimizer.get_config()
        # The template's rate as given: a float, or the schedule itself.
        learning_rate = config["learning_rate"]
        if isinstance(learning_rate, dict):
            learning_rate = keras.saving.deserialize_keras_object(learning_rate)
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            gradient_accumulation_steps=config.get("gradient_accumulation_steps"),
        )
        self.template = optimizer
        self.groups = groups
        self.multipliers = multipliers
        config["learning_rate"] = 0.0
        self.inner_optimizers = [
            type(optimizer).from_config({**config, "name": f"{config['name']}_{i}"})
            for i in range(len(groups) + 1)
        ]
        self._group_of_key = {}

    def _path_group(self, variable) -> int:
        """The group whose paths name `variable` (the rest: `len(groups)`)."""
        path = variable.path
        found = {
            i
            for i, group in enumerate(self.groups)
            for entry in group
            if _same_variable(entry, path)
        }
        if len(found) > 1:
            raise _checks.invalid(
                "groups",
                f"each variable in one group only; {path!r} is named in groups "
                f"{sorted(found)}",
                self.groups,
            )
        return found.pop() if found else len(self.groups)

    def _group_index(self, variable) -> int:
        group = self._group_of_key.get(self._var_key(variable))
        return self._path_group(variable) if group is None else group

    def _route(self, variables) -> list[list[int]]:
        """The indices into `variables` of each group (the rest last)."""
        indices = [[] for _ in self.inner_optimizers]
        for i, variable in enumerate(variables):
            indices[self._group_index(variable)].append(i)
        return indices

    def build(self, var_list) -> None:
        var_list = list(var_list)
        for entry in (entry for group in self.groups for entry in group):
            named = [v.path for v in var_list if _same_variable(entry, v.path)]
            if len(named) > 1:
                raise _checks.invalid(
                    "groups",
                    f"variable paths that name one variable each; {entry!r} names "
                    f"several variables: {named}",
                    self.groups,
                )
        self._group_of_key = {
            self._var_key(variable): self._path_group(variable) for variable in var_list
        }
        for inner, indices in zip(
            self.inner_optimizers, self._route(var_list), strict=True
        ):
            inner.build([var_list[i] for i in indices])
        # The inner copies hold the gradient accumulators; the base class would
        # add a second, unused set for a `gradient_accumulation_steps` here.
        steps, self.gradient_accumulation_steps = self.gradient_accumulation_steps, None
        try:
            super().build(var_list)
        finally:
            self.gradient_accumulation_steps = steps

    @property
    def variables(self) -> list:
        inner = [v for optimizer in self.inner_optimizers for v in optimizer.variables]
        return self._variables + inner

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        grads = list(grads)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        learning_rate = self._get_current_learning_rate()
        multipliers = [*self.multipliers, 1.0]
        for inner, multiplier, indices in zip(
            self.inner_optimizers,
            multipliers,
            self._route(trainable_variables),
            strict=True,
        ):
            if not indices:
                continue
            rate = ops.multiply(
                ops.cast(learning_rate, inner.learning_rate.dtype), multiplier
            )
            inner.learning_rate.assign(ops.cast(rate, inner.learning_rate.dtype))
            inner.apply(
                [grads[i] for i in indices], [trainable_variables[i] for i in indices]
            )
        self._iterations.assign_add(1)

    def finalize_variable_values(self, var_list) -> None:
        # No EMA is allowed, so there is nothing to write back.
        return None

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.template),
            "groups": [list(group) for group in self.groups],
            "multipliers": list(self.multipliers),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None) -> LayerRateOptimizer:
        config = dict(config)
        optimizer = keras.saving.deserialize_keras_object(
            config.pop("optimizer"), custom_objects=custom_objects
        )
        return cls(optimizer, **config)
