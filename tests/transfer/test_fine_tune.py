"""`fine_tune`: fastai's two 1cycles, the frozen then trained base, refusals."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from kerasx.transfer import FineTuneResult, LayerRateOptimizer, fine_tune


def _model(optimizer=None, jit_compile=False, metrics=None):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="body"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(
        optimizer or keras.optimizers.Adam(),
        "mse",
        metrics=metrics,
        jit_compile=jit_compile,
    )
    return model


def _one_cycle(max_rate, total_steps, pct_start, div):
    """torch OneCycleLR (cos, two phases) in float64, fastai's `div_final=1e5`."""
    initial, final = max_rate / div, max_rate / 1e5
    end_warm_up, end = pct_start * total_steps - 1, total_steps - 1

    def cos(start, stop, pct):
        return stop + (start - stop) / 2 * (1 + math.cos(math.pi * pct))

    rates = []
    for step in range(total_steps):
        if step <= end_warm_up:
            rates.append(cos(initial, max_rate, step / end_warm_up))
        else:
            pct = (step - end_warm_up) / (end - end_warm_up)
            rates.append(cos(max_rate, final, pct))
    return rates


def _rates(optimizer):
    """The rates of the optimizer that applies the updates: (base, head)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return tuple(float(o.learning_rate.numpy()) for o in optimizer.inner_optimizers)


class _Record(keras.callbacks.Callback):
    """The first layer's kernel at each `fit`'s ends, the inner rates per epoch."""

    def __init__(self):
        super().__init__()
        self.kernels, self.inner_rates = [], []

    def _kernel(self):
        return keras.ops.convert_to_numpy(self.model.layers[0].kernel).copy()

    def on_train_begin(self, logs=None):
        self.kernels.append(self._kernel())
        self.inner_rates.append([])

    def on_train_end(self, logs=None):
        self.kernels.append(self._kernel())

    # Epoch ends: where every backend has synced its variables.
    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if hasattr(inner, "inner_optimizers"):
            self.inner_rates[-1].append(_rates(optimizer))


def _run(
    optimizer,
    policy=None,
    samples=8,
    batch_size=8,
    epochs=4,
    freeze_epochs=3,
    jit_compile="auto",
    metrics=None,
):
    """One `fine_tune` (base = layers[:2]); what the tests read, as plain values.

    `jit_compile="auto"` by default: eager JAX compiles every `cond` (loss
    scaling, accumulation) anew at each step.
    """
    keras.utils.set_random_seed(1337)
    rng = np.random.default_rng(1337)
    previous = keras.mixed_precision.global_policy().name
    if policy is not None:
        keras.mixed_precision.set_global_policy(policy)
    try:
        model = _model(optimizer, jit_compile, metrics)
        bn = model.get_layer("bn")
        moving_mean = keras.ops.convert_to_numpy(bn.moving_mean).copy()
        record = _Record()
        x, y = rng.normal(size=(samples, 3)), rng.normal(size=(samples, 1))
        result = fine_tune(
            model,
            x,
            y,
            base="bn",
            epochs=epochs,
            freeze_epochs=freeze_epochs,
            base_lr=0.01,
            batch_size=batch_size,
            callbacks=[record],
            verbose=0,
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return {
        "result": result,
        "model": model,
        "record": record,
        "moving_mean": (moving_mean, keras.ops.convert_to_numpy(bn.moving_mean)),
        "kernel_dtype": keras.backend.standardize_dtype(model.layers[0].kernel.dtype),
        "final_rates": _rates(model.optimizer),
    }


@pytest.fixture(scope="module")
def sgd_run():
    # One batch per epoch: `logs["learning_rate"]` is then every step's rate.
    # A metric the user compiled with: fine_tune must keep it in both phases.
    run = _run(keras.optimizers.SGD(momentum=0.9), metrics=["mae"])
    keras.backend.clear_session(free_memory=False)
    return run


def test_rates_follow_fastai_fine_tune(sgd_run):
    frozen, unfrozen = sgd_run["result"]
    np.testing.assert_allclose(
        frozen.history["learning_rate"], _one_cycle(0.01, 3, 0.99, 25.0), rtol=1e-5
    )
    expected = _one_cycle(0.005, 4, 0.3, 5.0)
    np.testing.assert_allclose(unfrozen.history["learning_rate"], expected, rtol=1e-5)
    # Applied inside: the base at 1/100 of the head's rate, every step.
    base, head = np.array(sgd_run["record"].inner_rates[1]).T
    np.testing.assert_allclose(head, expected, rtol=1e-5)
    np.testing.assert_allclose(base, np.array(expected) / 100, rtol=1e-5)
    # The user's compile arguments, kept: the metric is logged in both phases.
    assert len(frozen.history["mae"]) == 3 and len(unfrozen.history["mae"]) == 4


def test_base_frozen_then_trained_batchnorm_kept_in_inference_mode(sgd_run):
    result, model = sgd_run["result"], sgd_run["model"]
    kernels = sgd_run["record"].kernels
    assert isinstance(result, FineTuneResult)
    assert result.base_lr == 0.01 and result.lr_finder is None
    np.testing.assert_array_equal(kernels[0], kernels[1])  # frozen phase
    assert not np.allclose(kernels[2], kernels[3])  # unfrozen phase
    np.testing.assert_array_equal(*sgd_run["moving_mean"])
    assert [layer.trainable for layer in model.layers] == [True, False, True]


def test_ends_compiled_with_a_layer_rate_optimizer_over_the_users(sgd_run):
    model = sgd_run["model"]
    assert isinstance(model.optimizer, LayerRateOptimizer)
    assert type(model.optimizer.template).__name__ == "SGD"
    assert model.optimizer.template.momentum == 0.9
    assert model.optimizer.multipliers == [0.01]
    assert model.loss == "mse"


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_rates_applied_inside_the_loss_scale_optimizer(policy):
    if policy == "mixed_float16":
        # The user's own wrapper: its settings carry over to both phases.
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(), initial_scale=2.0**8, dynamic_growth_steps=3
        )
    else:
        optimizer = keras.optimizers.Adam()
    run = _run(optimizer, policy=policy, epochs=3, freeze_epochs=2)
    frozen, unfrozen = run["result"]
    np.testing.assert_allclose(
        frozen.history["learning_rate"], _one_cycle(0.01, 2, 0.99, 25.0), rtol=1e-5
    )
    expected = _one_cycle(0.005, 3, 0.3, 5.0)
    np.testing.assert_allclose(unfrozen.history["learning_rate"], expected, rtol=1e-5)
    base, head = np.array(run["record"].inner_rates[1]).T
    np.testing.assert_allclose(head, expected, rtol=1e-5)
    np.testing.assert_allclose(base, np.array(expected) / 100, rtol=1e-5)
    model, kernels = run["model"], run["record"].kernels
    assert run["kernel_dtype"] == "float32"  # float32 master weights
    np.testing.assert_array_equal(kernels[0], kernels[1])
    assert not np.allclose(kernels[2], kernels[3])
    assert np.all(np.isfinite(kernels[3]))
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(model.optimizer.inner_optimizer, LayerRateOptimizer)
        assert model.optimizer.initial_scale == 2.0**8
        assert model.optimizer.dynamic_growth_steps == 3
        # 3 finite steps with growth every 3: 256 -> 512.
        assert float(model.optimizer.dynamic_scale.numpy()) == 512.0
    else:
        assert isinstance(model.optimizer, LayerRateOptimizer)


def test_gradient_accumulation_cycles_over_the_updates():
    # 4 samples, batches of 2, 2 batches per update: one update per epoch.
    run = _run(
        keras.optimizers.SGD(gradient_accumulation_steps=2),
        samples=4,
        batch_size=2,
        epochs=4,
        freeze_epochs=2,
    )
    frozen, unfrozen = run["result"]
    np.testing.assert_allclose(
        frozen.history["learning_rate"], _one_cycle(0.01, 2, 0.99, 25.0), rtol=1e-5
    )
    expected = _one_cycle(0.005, 4, 0.3, 5.0)
    np.testing.assert_allclose(unfrozen.history["learning_rate"], expected, rtol=1e-5)
    base, head = np.array(run["record"].inner_rates[1]).T
    np.testing.assert_allclose(head, expected, rtol=1e-5)
    np.testing.assert_allclose(base, np.array(expected) / 100, rtol=1e-5)
    optimizer = run["model"].optimizer
    assert optimizer.gradient_accumulation_steps == 2
    assert int(optimizer.iterations) == 4  # 8 batches, 4 updates
    assert not np.allclose(run["record"].kernels[2], run["record"].kernels[3])


def test_base_lr_none_runs_the_lr_finder(rng):
    model = _model(jit_compile="auto")
    # 12 batches: enough for the finder's valley (it skips 1 + the last 5).
    x, y = rng.normal(size=(96, 3)), rng.normal(size=(96, 1))
    result = fine_tune(model, x, y, base=-1, epochs=1, batch_size=8, verbose=0)
    assert result.lr_finder is not None
    assert result.base_lr == result.lr_finder.suggestion
    # The frozen phase peaks at the suggestion and ends at suggestion / 1e5.
    np.testing.assert_allclose(
        result.frozen.history["learning_rate"][-1], result.base_lr / 1e5, rtol=1e-5
    )


def test_refuses_an_uncompiled_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(
        ValueError, match=r"argument `model`. Expected a compiled model"
    ):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), base=0, epochs=1)


def test_refuses_an_optimizer_without_exact_groups():
    model = _model(keras.optimizers.RMSprop())
    with pytest.raises(
        ValueError, match=r"argument `model.optimizer`. Expected a Keras"
    ):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), base=1, epochs=1)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (dict(base=3, epochs=1), r"argument `base`.*leaves at least one layer"),
        (dict(base="nope", epochs=1), r"argument `base`.*layer names of this model"),
        (dict(base=1, epochs=0), r"argument `epochs`"),
        (dict(base=1, epochs=1, freeze_epochs=0), r"argument `freeze_epochs`"),
        (dict(base=1, epochs=1, base_lr=-1.0), r"argument `base_lr`"),
        (dict(base=1, epochs=1, lr_mult=0), r"argument `lr_mult`"),
        (dict(base=1, epochs=1, pct_start=1.0), r"argument `pct_start`"),
        (dict(base=1, epochs=1, div=0.0), r"argument `div`"),
        (
            dict(base=1, epochs=1, initial_epoch=2),
            r"argument `fit_kwargs`.*initial_epoch",
        ),
    ],
)
def test_refuses_bad_arguments(arguments, match):
    model = _model()
    with pytest.raises(ValueError, match=match):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), **arguments)


def test_refuses_epochs_in_fit_kwargs_by_position():
    model = _model()
    with pytest.raises(TypeError):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), 1, base=1, epochs=1)
