"""Runs a learning-rate (and momentum) schedule inside the optimizer's step.

Batch callbacks fire once per `steps_per_execution` steps and know nothing about
gradient accumulation, so a callback that assigns the learning rate from Python
is only exact in the simplest setting. Instead, the callbacks in this package
wrap the optimizer's `apply` on the instance: the wrapper computes the schedule
from `optimizer.iterations` (which Keras already divides by
`gradient_accumulation_steps`) and writes it into the optimizer's own
learning-rate variable, inside the traced train step. No variable is added or
removed, so checkpoints saved during `fit` stay loadable by a plain optimizer.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kerasx import _keras_internals

_HOOK_ATTRIBUTE = "_kerasx_step_hook"


def check_learning_rate_is_variable(optimizer) -> None:
    """Raises if the optimizer's learning rate is a schedule or a callable."""
    if not isinstance(optimizer.learning_rate, keras.Variable):
        compiled = _keras_internals.compiled_learning_rate(optimizer)
        raise ValueError(
            "Invalid value received for argument `optimizer.learning_rate`. Expected "
            "a float learning rate (kerasx drives it per step). Received: "
            f"learning_rate={compiled!r}. Compile the model with e.g. "
            "`keras.optimizers.SGD(learning_rate=0.01)`, or pass your schedule to "
            "`kerasx.callbacks.OneCycleScheduler.from_schedule(schedule)`."
        )


def momentum_kind(optimizer) -> str:
    """How momentum can be cycled on `optimizer`: "beta_1" or "sgd"; else raises."""
    if isinstance(optimizer, keras.optimizers.SGD):
        if optimizer.momentum == 0 or optimizer.nesterov:
            raise ValueError(
                "Invalid value received for argument `cycle_momentum`. Cycling SGD "
                "momentum needs `SGD(momentum>0, nesterov=False)` (Keras allocates no "
                "momentum slots for momentum=0). Received: "
                f"momentum={optimizer.momentum}, nesterov={optimizer.nesterov}"
            )
        return "sgd"
    if isinstance(getattr(optimizer, "beta_1", None), float):
        return "beta_1"
    raise ValueError(
        "Invalid value received for argument `cycle_momentum`. Expected an optimizer "
        "with a `beta_1` (Adam, AdamW, Nadam, Adamax, Lamb, Lion) or SGD with "
        f"momentum. Received: optimizer={type(optimizer).__name__}"
    )


class StepHook:
    """Installs `learning_rate_fn(step)` (and `momentum_fn(step)`) into `model`."""

    def __init__(self, model, learning_rate_fn, momentum_fn=None, start_step=0):
        self.model = model
        self.optimizer = model.optimizer
        self.learning_rate_fn = learning_rate_fn
        self.momentum_fn = momentum_fn
        self.start_step = start_step
        self.kind = momentum_kind(self.optimizer) if momentum_fn else None
        if self.kind == "sgd" and not self.optimizer.built:
            # The momentum slots must exist before the traced step rescales them;
            # this is the build `apply` would do on the first step.
            with keras.name_scope(self.optimizer.name, caller=self.optimizer):
                self.optimizer.build(model.trainable_variables)
        self.variable = self.optimizer.learning_rate
        self.original_value = np.array(self.variable.numpy(), copy=True)

    def install(self) -> None:
        remove_step_hook(self.model)
        self.previous_apply = self.optimizer.__dict__.get("apply")
        self.wrapped_apply = self.optimizer.apply
        self.optimizer.apply = self._apply
        setattr(self.optimizer, _HOOK_ATTRIBUTE, self)
        # A train function traced before the hook would ignore it: retrace.
        self.model.make_train_function(force=True)

    def remove(self) -> None:
        optimizer = self.optimizer
        if self.previous_apply is None:
            del optimizer.apply
        else:
            optimizer.apply = self.previous_apply
        delattr(optimizer, _HOOK_ATTRIBUTE)
        self.variable.assign(self.original_value)
        self.model.make_train_function(force=True)

    def _apply(self, grads, trainable_variables=None):
        optimizer = self.optimizer
        step = ops.subtract(optimizer.iterations, self.start_step)
        rate = ops.cast(self.learning_rate_fn(step), self.variable.dtype)
        self.variable.assign(rate)
        if self.kind is None:
            return self.wrapped_apply(grads, trainable_variables)
        momentum = self.momentum_fn(step)
        if self.kind == "sgd":
            self._rescale_sgd_momentum(momentum)
            return self.wrapped_apply(grads, trainable_variables)
        constant = optimizer.beta_1
        optimizer.beta_1 = momentum
        try:
            return self.wrapped_apply(grads, trainable_variables)
        finally:
            optimizer.beta_1 = constant

    def _rescale_sgd_momentum(self, momentum) -> None:
        """Makes Keras' `m <- momentum * m - lr * g` use the scheduled momentum.

        Keras SGD multiplies by its Python-float `momentum` (and branches on it),
        so the slot is pre-scaled by `scheduled / momentum` instead.
        """
        optimizer = self.optimizer
        ratio = ops.divide(momentum, optimizer.momentum)
        accumulation = optimizer.gradient_accumulation_steps
        for slot in optimizer.momentums:
            scaled = ops.multiply(slot, ops.cast(ratio, slot.dtype))
            if accumulation:
                # Only the step that applies the accumulated gradient uses `m`.
                raw_step = _keras_internals.raw_iterations(optimizer)
                is_update = (raw_step + 1) % accumulation == 0
                scaled = ops.where(is_update, scaled, slot)
            slot.assign(scaled)


def remove_step_hook(model) -> None:
    """Removes a hook left behind by an interrupted `fit` (no-op otherwise)."""
    hook = getattr(model.optimizer, _HOOK_ATTRIBUTE, None)
    if hook is not None:
        hook.remove()
