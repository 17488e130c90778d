"""Runs a learning-rate (and momentum) schedule inside the optimizer's step.

Batch callbacks fire once per `steps_per_execution` steps and know nothing about
gradient accumulation, so a callback that assigns the learning rate from Python
is only exact in the simplest setting. Instead, the callbacks in this package
wrap the optimizer's `apply` on the instance: the wrapper computes the schedule
from `optimizer.iterations` (which Keras already divides by
`gradient_accumulation_steps`) and writes it into the optimizer's own
learning-rate variable, inside the traced train step. No variable is added or
removed, so checkpoints saved during `fit` stay loadable by a plain optimizer.

The hook lives for one `fit`. Keras calls no `on_train_end` when a `fit` is
interrupted (an exception, `KeyboardInterrupt`), so the end of the hook does not
depend on it: while a hook is installed, the model's `make_train_function`,
which Keras calls first thing in every `fit` and `train_on_batch`, is wrapped
too, and that wrapper removes the hook of the interrupted `fit` before the new
train function is built. Either way the hook ends the same: the optimizer keeps
the last applied learning rate in its variable and the last applied momentum as
its Python float (as `keras.callbacks.LearningRateScheduler` leaves it), the
optimizer's `apply` and the model's `make_train_function` are the class' own
again, and the train function is rebuilt without the schedule.

Under mixed precision `compile` wraps the optimizer in a
`keras.optimizers.LossScaleOptimizer` (users may wrap it themselves). The hook
then wraps the *inner* optimizer, the one that applies the updates: its `apply`
is what every backend calls for a finite step (JAX's `stateless_apply` of the
loss-scale optimizer calls the inner `stateless_apply`, never its own
`apply`), its `learning_rate` variable and `momentum` / `beta_1` are the ones
used, and its `iterations` count only the applied updates: a step the
loss-scale optimizer skips for non-finite gradients neither assigns a rate nor
advances the schedule, as a Keras `LearningRateSchedule` compiled into the same
optimizer behaves.
"""

from __future__ import annotations

import keras
from keras import ops

from kerasx import _keras_internals

_HOOK_ATTRIBUTE = "_kerasx_step_hook"


def applying_optimizer(optimizer):
    """The optimizer that applies the updates: inside any `LossScaleOptimizer`."""
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer


def accumulation_steps(optimizer) -> int:
    """Batches per applied update (`gradient_accumulation_steps`, else 1)."""
    return applying_optimizer(optimizer).gradient_accumulation_steps or 1


def raw_step_count(optimizer) -> int:
    """Batches the applying optimizer has consumed (every accumulation step)."""
    raw = _keras_internals.raw_iterations(applying_optimizer(optimizer))
    return int(ops.convert_to_numpy(raw))


def check_learning_rate_is_variable(optimizer) -> None:
    """Raises if the optimizer's learning rate is a schedule or a callable."""
    optimizer = applying_optimizer(optimizer)
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
    optimizer = applying_optimizer(optimizer)
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
    """Installs `learning_rate_fn(step)` (and `momentum_fn(step)`) into `model`.

    `owner` is the callback that drives the schedule; it names the hook in
    errors. `start_step` may be changed until the train function is traced.
    """

    def __init__(
        self, owner, model, learning_rate_fn, momentum_fn=None, start_step=0
    ) -> None:
        self.owner = owner
        self.model = model
        self.optimizer = applying_optimizer(model.optimizer)
        self.learning_rate_fn = learning_rate_fn
        self.momentum_fn = momentum_fn
        self.start_step = start_step
        self.kind = momentum_kind(self.optimizer) if momentum_fn else None
        outer = model.optimizer
        if self.kind == "sgd" and not outer.built:
            # The momentum slots must exist before the traced step rescales them;
            # this is the build `apply` would do on the first step (a loss-scale
            # optimizer builds its inner one).
            with keras.name_scope(outer.name, caller=outer):
                outer.build(model.trainable_variables)
        self.variable = self.optimizer.learning_rate

    def install(self) -> None:
        """Installs the hook; refuses a second kerasx schedule in the same `fit`."""
        other = getattr(self.optimizer, _HOOK_ATTRIBUTE, None)
        if other is not None:
            # Every `fit` starts with `make_train_function`, whose wrapper ends the
            # hook of an interrupted `fit`: a hook still here belongs to this `fit`
            # (unless another model that shares the optimizer left it).
            other.finish()
            if other.model is self.model:
                first, second = type(other.owner).__name__, type(self.owner).__name__
                raise ValueError(
                    "Invalid value received for argument `callbacks`. Expected at "
                    "most one kerasx learning-rate schedule per `fit`. Received: "
                    f"{first} and {second}, which would both set the learning "
                    "rate of every step."
                )
        self.start_iterations = _iterations(self.optimizer)
        self.wrapped_apply = self.optimizer.apply
        self.optimizer.apply = self._apply
        setattr(self.optimizer, _HOOK_ATTRIBUTE, self)
        # A train function traced before the hook would ignore it: rebuild it.
        self.model.make_train_function(force=True)
        model, hook = self.model, self

        def make_train_function(force=False):
            hook.finish()
            return model.make_train_function(force=force)

        object.__setattr__(model, "make_train_function", make_train_function)

    def finish(self) -> None:
        """Ends the hook, keeping the last applied rate and momentum (idempotent)."""
        optimizer = self.optimizer
        if getattr(optimizer, _HOOK_ATTRIBUTE, None) is not self:
            return
        delattr(optimizer, _HOOK_ATTRIBUTE)
        if "apply" in optimizer.__dict__:
            del optimizer.apply
        if "make_train_function" in self.model.__dict__:
            object.__delattr__(self.model, "make_train_function")
        last_step = _iterations(optimizer) - 1
        if self.momentum_fn is not None and last_step >= self.start_iterations:
            momentum = self.momentum_fn(last_step - self.start_step)
            attribute = "momentum" if self.kind == "sgd" else "beta_1"
            setattr(optimizer, attribute, float(ops.convert_to_numpy(momentum)))
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


def _iterations(optimizer) -> int:
    return int(ops.convert_to_numpy(optimizer.iterations))


def remove_step_hook(model) -> None:
    """Ends a hook left on `model`'s optimizer (no-op when there is none)."""
    hook = getattr(applying_optimizer(model.optimizer), _HOOK_ATTRIBUTE, None)
    if hook is not None:
        hook.finish()
