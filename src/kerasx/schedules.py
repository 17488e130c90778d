"""Learning-rate schedules: the 1cycle policy (PyTorch `OneCycleLR` semantics)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from kerasx import _checks

__all__ = ["OneCycle"]

_ANNEAL_STRATEGIES = ("cos", "linear")


def _anneal(step, start_step, end_step, start_value, end_value, strategy):
    """Interpolates from `start_value` at `start_step` to `end_value` at `end_step`.

    The increment is always added to the smaller endpoint with a non-negative
    weight, so float32 never subtracts two nearly equal numbers (a schedule that
    ends at `max / 2.5e5` keeps full relative precision near its end). For the
    cosine, `(1 + cos(pi * pct)) / 2 == sin(pi * (1 - pct) / 2) ** 2`.
    """
    length = end_step - start_step
    if length == 0:
        # A zero-length phase (where PyTorch would divide by zero) is its end value.
        return ops.full_like(step, end_value)
    done = (step - start_step) / length
    remaining = (end_step - step) / length
    if end_value >= start_value:
        base, span, fraction = start_value, end_value - start_value, done
    else:
        base, span, fraction = end_value, start_value - end_value, remaining
    if strategy == "cos":
        fraction = ops.square(ops.sin(fraction * (math.pi / 2.0)))
    return base + span * fraction


def _piecewise(step, phases, strategy):
    """Evaluates `phases` = [(start, end, start_value, end_value), ...] at `step`.

    Phase `i` applies while `step <= end_i` (the first such phase wins), and the
    last phase applies to every later step, exactly as in PyTorch's `OneCycleLR`.
    `step` is an integer, so `step <= end` is evaluated as `step <= floor(end)`.
    """
    value = _anneal(step, *phases[-1], strategy)
    for start, end, start_value, end_value in reversed(phases[:-1]):
        phase_value = _anneal(step, start, end, start_value, end_value, strategy)
        # A float bound: a Python int above 2**31 - 1 overflows JAX's int32.
        value = ops.where(step <= float(math.floor(end)), phase_value, value)
    return value


def _check_momentum(base_momentum: Any, max_momentum: Any) -> tuple[float, float]:
    """`0 <= base_momentum <= max_momentum < 1`, as floats."""
    base_momentum = _checks.number(
        "base_momentum", base_momentum, low=0, high=1, high_open=True
    )
    max_momentum = _checks.number(
        "max_momentum",
        max_momentum,
        low=base_momentum,
        high=1,
        high_open=True,
        expected=f"a float in [base_momentum, 1) = [{base_momentum}, 1)",
    )
    return base_momentum, max_momentum


@keras.saving.register_keras_serializable(package="kerasx")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The 1cycle learning-rate policy, identical to PyTorch's `OneCycleLR`.

    The rate warms up from `initial = max_learning_rate / div_factor` to
    `max_learning_rate` during the first `pct_start * total_steps - 1` steps, then
    anneals to `minimum = initial / final_div_factor` at step `total_steps - 1`.
    With `three_phase=True` it first returns to `initial` (symmetrically) and
    only then anneals to `minimum`. Between two knots the value is

    - `"cos"`:    `end + (start - end) * (1 + cos(pi * pct)) / 2`
    - `"linear"`: `start + (end - start) * pct`

    where `pct` is the fraction of the phase completed. The value at step `s`
    equals the learning rate PyTorch uses after `s` calls to
    `scheduler.step()`; for `s >= total_steps` (where PyTorch raises or
    extrapolates) the schedule stays at `minimum`. Values are computed in
    float32 to within 1e-6 relative of PyTorch's float64 values.

    The three rates `initial`, `max_learning_rate` and `minimum` must be
    positive normal float32 values (in `[1.1754944e-38, 3.4028235e+38]`), as
    the schedule is computed in float32; any other combination is refused.
    Called with a step (a Python or NumPy integer, or a scalar integer
    tensor), the schedule returns the rate as a float32 scalar tensor; pass it
    as an optimizer's `learning_rate`, or to
    `kerasx.callbacks.OneCycleScheduler.from_schedule` to drive it per step.
    `momentum(step)` gives the matching momentum curve.

    Args:
        max_learning_rate: Peak learning rate, a float > 0.
        total_steps: Length of the cycle in optimizer steps, an int >= 2 (any
            size: steps are counted in float32, exact up to 2**24 and within
            one part in 1e7 of the cycle beyond).
        pct_start: Fraction of the cycle spent warming up, in (0, 1).
        anneal_strategy: `"cos"` or `"linear"`.
        div_factor: `initial = max_learning_rate / div_factor`, a float > 0.
        final_div_factor: `minimum = initial / final_div_factor`, a float > 0.
        three_phase: Whether to use the three-phase variant (see above).
        name: Name of the schedule.

    Raises:
        ValueError: If `max_learning_rate` is not a positive normal float32;
            if `total_steps` is not an integer >= 2; if `pct_start` is not a
            float in (0, 1) (in (0, 0.5] when `three_phase=True`); if
            `anneal_strategy` is not `"cos"` or `"linear"`; if `div_factor` or
            `final_div_factor` is not a float > 0, or makes the initial or the
            minimum rate leave the positive normal float32 range; if
            `three_phase` is not a bool.

    Example:

    ```python
    >>> import keras
    >>> from kerasx.schedules import OneCycle
    >>> schedule = OneCycle(0.1, total_steps=100)  # warm-up over steps 0..29
    >>> [round(float(schedule(step)), 6) for step in (0, 29)]
    [0.004, 0.1]
    >>> round(float(schedule(99)), 9)  # minimum = 0.1 / 25 / 1e4
    4e-07
    >>> [round(float(schedule.momentum(step)), 4) for step in (0, 29, 99)]
    [0.95, 0.85, 0.95]
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    >>> OneCycle.from_config(schedule.get_config()).total_steps
    100

    ```

    Reference:
        - [Smith & Topin, 2017](https://arxiv.org/abs/1708.07120), "Super-Convergence".
        - `torch.optim.lr_scheduler.OneCycleLR` (PyTorch 2.13).
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        *,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        name: str = "OneCycle",
    ) -> None:
        max_learning_rate = _checks.learning_rate(
            "max_learning_rate", max_learning_rate
        )
        total_steps = _checks.integer("total_steps", total_steps, minimum=2)
        three_phase = _checks.boolean("three_phase", three_phase)
        if three_phase:
            # The warm-up and its mirror image take `2 * pct_start` of the cycle:
            # above 0.5 the third phase never starts and the peak is cut short.
            pct_start = _checks.number(
                "pct_start",
                pct_start,
                low=0,
                high=0.5,
                low_open=True,
                expected=(
                    "a float in (0, 0.5] when three_phase=True (the warm-up and "
                    "its mirror take 2 * pct_start of the cycle; above 0.5 the "
                    "third phase never starts and the rate never reaches "
                    "max_learning_rate)"
                ),
            )
        else:
            pct_start = _checks.number(
                "pct_start", pct_start, low=0, high=1, low_open=True, high_open=True
            )
        anneal_strategy = _checks.choice(
            "anneal_strategy", anneal_strategy, _ANNEAL_STRATEGIES
        )
        div_factor = _checks.number("div_factor", div_factor, low=0, low_open=True)
        final_div_factor = _checks.number(
            "final_div_factor", final_div_factor, low=0, low_open=True
        )
        initial_learning_rate = max_learning_rate / div_factor
        _checks.derived_learning_rate(
            "div_factor",
            div_factor,
            "the initial learning rate max_learning_rate / div_factor",
            initial_learning_rate,
        )
        _checks.derived_learning_rate(
            "final_div_factor",
            final_div_factor,
            "the minimum learning rate max_learning_rate / div_factor / "
            "final_div_factor",
            initial_learning_rate / final_div_factor,
        )
        self.max_learning_rate = float(max_learning_rate)
        self.total_steps = total_steps
        self.pct_start = float(pct_start)
        self.anneal_strategy = anneal_strategy
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.three_phase = bool(three_phase)
        self.name = name
        self.initial_learning_rate = self.max_learning_rate / self.div_factor
        self.minimum_learning_rate = self.initial_learning_rate / self.final_div_factor

    def _phases(
        self, warmup: tuple[float, float], peak: tuple[float, float], end: float
    ):
        """Phases as (start_step, end_step, start_value, end_value), like PyTorch."""
        first_end = self.pct_start * self.total_steps - 1.0
        last_step = float(self.total_steps - 1)
        if self.three_phase:
            second_end = 2.0 * self.pct_start * self.total_steps - 2.0
            return [
                (0.0, first_end, *warmup),
                (first_end, second_end, *peak),
                (second_end, last_step, warmup[0], end),
            ]
        return [(0.0, first_end, *warmup), (first_end, last_step, peak[0], end)]

    def _step(self, step):
        if _checks.is_real(step):
            # Via float: JAX would convert a Python int above 2**31 - 1 to int32.
            step = float(step)
        step = ops.cast(step, "float32")
        return ops.clip(step, 0.0, float(self.total_steps - 1))

    def __call__(self, step):
        initial, peak = self.initial_learning_rate, self.max_learning_rate
        phases = self._phases(
            (initial, peak), (peak, initial), self.minimum_learning_rate
        )
        return _piecewise(self._step(step), phases, self.anneal_strategy)

    def momentum(
        self, step: Any, base_momentum: float = 0.85, max_momentum: float = 0.95
    ) -> Any:
        """The momentum (or Adam `beta_1`) matching the learning rate at `step`.

        It moves opposite to the rate: `max_momentum` at the start, `base_momentum`
        at the peak rate, back to `max_momentum` at the end (three-phase: stays at
        `max_momentum` during the last phase), like PyTorch's `cycle_momentum`.

        Args:
            step: Scalar integer (tensor), the optimizer step.
            base_momentum: Momentum at the peak learning rate, in [0, 1).
            max_momentum: Momentum at the start and end, in [base_momentum, 1).

        Returns:
            A float32 scalar tensor.

        Raises:
            ValueError: If `base_momentum` is not a float in [0, 1), or
                `max_momentum` not a float in [base_momentum, 1).
        """
        _check_momentum(base_momentum, max_momentum)
        phases = self._phases(
            (max_momentum, base_momentum), (base_momentum, max_momentum), max_momentum
        )
        return _piecewise(self._step(step), phases, self.anneal_strategy)

    def get_config(self) -> dict[str, Any]:
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
            "name": self.name,
        }
