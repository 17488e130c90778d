"""`LayerRateOptimizer`: equal to one optimizer per group; 1cycle, saving, refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.callbacks import OneCycleScheduler
from kerasx.transfer import LayerRateOptimizer

MULTIPLIER = 0.1
# A rate that changes every step, as a schedule assigns it.
RATES = [0.01, 0.03, 0.02, 0.005, 0.04, 0.001]

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.01),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.01, momentum=0.9),
    "sgd_nesterov": lambda: keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
    "sgd_clipnorm": lambda: keras.optimizers.SGD(0.01, momentum=0.5, clipnorm=0.5),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adam_amsgrad": lambda: keras.optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
    "adamax": lambda: keras.optimizers.Adamax(0.01),
}


def _tensor(value):
    return keras.ops.convert_to_tensor(value, "float32")


def _variables(values):
    return [keras.Variable(value, name=f"v{i}") for i, value in enumerate(values)]


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_updates_equal_one_optimizer_per_group(kind, rng):
    initial = [rng.normal(size=(3, 2)), rng.normal(size=(2,)), rng.normal(size=(4,))]
    initial = [value.astype("float32") for value in initial]
    grads = [
        [_tensor(rng.normal(size=value.shape)) for value in initial] for _ in RATES
    ]
    wrapped_vars = _variables(initial)
    base_vars, head_vars = _variables(initial[:2]), _variables(initial[2:])
    optimizer = LayerRateOptimizer(
        OPTIMIZERS[kind](),
        groups=[[wrapped_vars[0].path, wrapped_vars[1].path]],
        multipliers=[MULTIPLIER],
    )
    base_optimizer, head_optimizer = OPTIMIZERS[kind](), OPTIMIZERS[kind]()
    for rate, step_grads in zip(RATES, grads, strict=True):
        optimizer.learning_rate.assign(rate)
        optimizer.apply(step_grads, wrapped_vars)
        base_optimizer.learning_rate.assign(np.float32(rate) * np.float32(MULTIPLIER))
        head_optimizer.learning_rate.assign(rate)
        base_optimizer.apply(step_grads[:2], base_vars)
        head_optimizer.apply(step_grads[2:], head_vars)
    # float32: the only difference allowed is the rounding of rate * multiplier.
    for got, want in zip(wrapped_vars, base_vars + head_vars, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)
    assert int(optimizer.iterations) == len(RATES)
    # Not a vacuous comparison: the base moved, by less than the head would.
    assert not np.allclose(wrapped_vars[0].numpy(), initial[0])


def test_sgd_momentum_matches_numpy_float64(rng):
    # m <- 0.9 m - lr_group g ; w <- w + m, with lr_group = multiplier * rate.
    w0 = rng.normal(size=(2,)).astype("float32")
    grads = [_tensor(rng.normal(size=(2,))) for _ in RATES]
    variable = keras.Variable(w0)
    optimizer = LayerRateOptimizer(
        keras.optimizers.SGD(0.01, momentum=0.9), [[variable.path]], [MULTIPLIER]
    )
    weight, momentum = w0.astype("float64"), np.zeros(2)
    for rate, grad in zip(RATES, grads, strict=True):
        optimizer.learning_rate.assign(rate)
        optimizer.apply([grad], [variable])
        momentum = 0.9 * momentum - MULTIPLIER * rate * keras.ops.convert_to_numpy(grad)
        weight = weight + momentum
    np.testing.assert_allclose(variable.numpy(), weight, rtol=1e-5, atol=1e-7)


def test_one_cycle_scheduler_drives_every_group(rng):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)]
    )
    base_paths = [v.path for v in model.layers[0].trainable_weights]
    optimizer = LayerRateOptimizer(
        keras.optimizers.SGD(0.5), [base_paths], [MULTIPLIER]
    )
    model.compile(optimizer, "mse")
    rates = []

    class Record(keras.callbacks.Callback):
        # Epoch ends: where every backend has synced its variables.
        def on_epoch_end(self, epoch, logs=None):
            inner = [float(o.learning_rate.numpy()) for o in optimizer.inner_optimizers]
            rates.append((float(optimizer.learning_rate.numpy()), *inner))

    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 1))
    cycle = OneCycleScheduler(10, max_rate=0.1)
    model.fit(x, y, batch_size=4, epochs=10, callbacks=[cycle, Record()], verbose=0)
    # The Hands-On ML curve, iterations=10: half = (10 - 2) // 2 = 4, start 0.01.
    expected = [0.01, 0.0325, 0.055, 0.0775, 0.1, 0.0775, 0.055, 0.0325, 0.01, 1e-5]
    got = np.array(rates)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], MULTIPLIER * got[:, 0], rtol=1e-6)
    np.testing.assert_allclose(got[:, 2], got[:, 0], rtol=1e-6)


def _apply_stateless(optimizer, grads, variables):
    """One `stateless_apply` (the JAX trainer's path), written back."""
    if not optimizer.built:
        optimizer.build(variables)
    stateless_apply = optimizer.stateless_apply
    if keras.backend.backend() == "jax":
        # As the JAX trainer runs it (eager JAX compiles every `cond` anew).
        import jax

        if not hasattr(optimizer, "_test_jitted_apply"):
            optimizer._test_jitted_apply = jax.jit(optimizer.stateless_apply)
        stateless_apply = optimizer._test_jitted_apply
    new_values, new_state = stateless_apply(
        [v.value for v in optimizer.variables], grads, [v.value for v in variables]
    )
    for variable, value in zip(variables, new_values, strict=True):
        variable.assign(value)
    for variable, value in zip(optimizer.variables, new_state, strict=True):
        variable.assign(value)


def optimizer_step(path):
    """`optimizer.apply`, or the same step through `stateless_apply`."""
    if path == "apply":
        return lambda optimizer, grads, variables: optimizer.apply(grads, variables)
    return _apply_stateless


# The gradients of step 2 (0-based) are non-finite in both groups: the step is skipped.
SKIPPED_STEP = 2


@pytest.mark.parametrize("path", ["apply", "stateless_apply"])
@pytest.mark.parametrize("kind", ["sgd_momentum", "adam", "adamw"])
def test_inside_a_loss_scale_optimizer_equals_one_loss_scaled_optimizer_per_group(
    kind, path, rng
):
    if path == "stateless_apply" and keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow trains through `apply`, not `stateless_apply`")
    if path == "apply" and keras.backend.backend() == "jax":
        # Keras' own LossScaleOptimizer(SGD()).apply leaks a tracer from its
        # `jax.lax.cond` when called eagerly; the JAX trainer never calls it.
        pytest.skip("JAX trains a LossScaleOptimizer through `stateless_apply`")
    step = optimizer_step(path)
    initial = [rng.normal(size=(3, 2)), rng.normal(size=(2,)), rng.normal(size=(4,))]
    initial = [value.astype("float32") for value in initial]
    # Loss-scaled gradients (the scale is 2**10 at first).
    grads = [
        [
            (2.0**10 * rng.normal(size=value.shape)).astype("float32")
            for value in initial
        ]
        for _ in RATES
    ]
    grads[SKIPPED_STEP][0][0, 0] = np.inf
    grads[SKIPPED_STEP][2][1] = np.nan
    grads = [[_tensor(g) for g in step] for step in grads]
    wrapped_vars = _variables(initial)
    base_vars, head_vars = _variables(initial[:2]), _variables(initial[2:])

    def loss_scaled(optimizer):
        return keras.optimizers.LossScaleOptimizer(
            optimizer, initial_scale=2.0**10, dynamic_growth_steps=2
        )

    optimizer = loss_scaled(
        LayerRateOptimizer(
            OPTIMIZERS[kind](),
            groups=[[wrapped_vars[0].path, wrapped_vars[1].path]],
            multipliers=[MULTIPLIER],
        )
    )
    base_optimizer = loss_scaled(OPTIMIZERS[kind]())
    head_optimizer = loss_scaled(OPTIMIZERS[kind]())
    for rate, step_grads in zip(RATES, grads, strict=True):
        # The loss-scale optimizer's rate is its inner optimizer's.
        optimizer.learning_rate.assign(rate)
        step(optimizer, step_grads, wrapped_vars)
        base_optimizer.learning_rate.assign(np.float32(rate) * np.float32(MULTIPLIER))
        head_optimizer.learning_rate.assign(rate)
        step(base_optimizer, step_grads[:2], base_vars)
        step(head_optimizer, step_grads[2:], head_vars)
    for got, want in zip(wrapped_vars, base_vars + head_vars, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(wrapped_vars[0].numpy()))
    assert not np.allclose(wrapped_vars[0].numpy(), initial[0])
    # Growth after 2 finite steps, halved at the skipped one: 1024 -> 2048 ->
    # 1024 -> 2048 (steps 1, 2, 4); 5 updates applied, in every group.
    assert float(optimizer.dynamic_scale.numpy()) == 2048.0
    assert float(base_optimizer.dynamic_scale.numpy()) == 2048.0
    assert int(optimizer.iterations) == len(RATES) - 1
    inner = optimizer.inner_optimizer.inner_optimizers
    assert [int(o.iterations) for o in inner] == [len(RATES) - 1] * 2
    # The last rate was applied inside: base at MULTIPLIER times the head's.
    np.testing.assert_allclose(
        [float(o.learning_rate.numpy()) for o in inner],
        [MULTIPLIER * RATES[-1], RATES[-1]],
        rtol=1e-6,
    )


@pytest.mark.parametrize("path", ["apply", "stateless_apply"])
@pytest.mark.parametrize("kind", ["sgd_momentum", "adam"])
def test_gradient_accumulation_equals_one_accumulating_optimizer_per_group(
    kind, path, rng
):
    if path == "stateless_apply" and keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow trains through `apply`, not `stateless_apply`")
    if path == "apply" and keras.backend.backend() == "jax":
        pytest.skip("the JAX trainer applies through `stateless_apply`")
    step = optimizer_step(path)

    def accumulating():
        optimizer = OPTIMIZERS[kind]()
        config = {**optimizer.get_config(), "gradient_accumulation_steps": 2}
        return type(optimizer).from_config(config)

    initial = [rng.normal(size=(3, 2)), rng.normal(size=(4,))]
    initial = [value.astype("float32") for value in initial]
    grads = [
        [_tensor(rng.normal(size=value.shape)) for value in initial] for _ in RATES
    ]
    wrapped_vars = _variables(initial)
    base_vars, head_vars = _variables(initial[:1]), _variables(initial[1:])
    optimizer = LayerRateOptimizer(
        accumulating(), groups=[[wrapped_vars[0].path]], multipliers=[MULTIPLIER]
    )
    assert optimizer.gradient_accumulation_steps == 2
    base_optimizer, head_optimizer = accumulating(), accumulating()
    for rate, step_grads in zip(RATES, grads, strict=True):
        optimizer.learning_rate.assign(rate)
        step(optimizer, step_grads, wrapped_vars)
        base_optimizer.learning_rate.assign(np.float32(rate) * np.float32(MULTIPLIER))
        head_optimizer.learning_rate.assign(rate)
        step(base_optimizer, step_grads[:1], base_vars)
        step(head_optimizer, step_grads[1:], head_vars)
    for got, want in zip(wrapped_vars, base_vars + head_vars, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)
    # 6 batches, 3 updates: `iterations` counts updates, as Keras' own do.
    assert int(optimizer.iterations) == 3
    assert [int(o.iterations) for o in optimizer.inner_optimizers] == [3, 3]
    # No second set of accumulators in the wrapper: only the inner copies' slots.
    assert len(optimizer.variables) == len(optimizer._variables) + sum(
        len(o.variables) for o in optimizer.inner_optimizers
    )
    assert not hasattr(optimizer, "_accumulated_gradients")


def test_gradient_accumulation_sgd_matches_numpy_float64(rng):
    # Plain SGD, 2 batches per update: w <- w - m * rate * mean(g1, g2), with
    # the rate held on the second batch of each pair.
    w0 = rng.normal(size=(3,)).astype("float32")
    grads = [rng.normal(size=(3,)).astype("float32") for _ in RATES]
    variable = keras.Variable(w0)
    optimizer = LayerRateOptimizer(
        keras.optimizers.SGD(0.01, gradient_accumulation_steps=2),
        [[variable.path]],
        [MULTIPLIER],
    )
    weight = w0.astype("float64")
    for step, (rate, grad) in enumerate(zip(RATES, grads, strict=True)):
        optimizer.learning_rate.assign(rate)
        optimizer.apply([_tensor(grad)], [variable])
        if step % 2 == 1:
            mean = (grads[step - 1].astype("float64") + grad) / 2
            weight = weight - MULTIPLIER * rate * mean
    np.testing.assert_allclose(variable.numpy(), weight, rtol=1e-5, atol=1e-7)


def test_config_round_trip_and_keras_file(tmp_path, rng):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)]
    )
    base_paths = [v.path for v in model.layers[0].trainable_weights]
    optimizer = LayerRateOptimizer(
        keras.optimizers.Adam(3e-3, beta_2=0.99), [base_paths], [0.25], name="lro"
    )
    config = optimizer.get_config()
    assert config["groups"] == [base_paths]
    assert config["multipliers"] == [0.25]
    again = LayerRateOptimizer.from_config(config)
    assert again.get_config() == config
    assert again.template.beta_2 == 0.99
    model.compile(optimizer, "mse")
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 1)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, LayerRateOptimizer)
    assert len(loaded.optimizer.variables) == len(optimizer.variables)
    for got, want in zip(loaded.optimizer.variables, optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(got.numpy()), np.asarray(want.numpy()))


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        (
            lambda: keras.optimizers.RMSprop(),
            r"argument `optimizer`. Expected a Keras SGD",
        ),
        (
            lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
            r"argument `optimizer`. Expected a Keras SGD",
        ),
        (
            lambda: keras.optimizers.Adam(global_clipnorm=1.0),
            r"argument `optimizer.global_clipnorm`.*Received: .*=1.0",
        ),
        (
            lambda: keras.optimizers.Adam(use_ema=True),
            r"argument `optimizer.use_ema`",
        ),
        (
            lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()),
            r"argument `optimizer`.*not a LossScaleOptimizer.*wrap the "
            r"LayerRateOptimizer instead",
        ),
        (
            lambda: keras.optimizers.SGD(loss_scale_factor=8.0),
            r"argument `optimizer.loss_scale_factor`",
        ),
    ],
)
def test_refuses_optimizers_where_groups_would_not_be_exact(optimizer, match):
    with pytest.raises(ValueError, match=match):
        LayerRateOptimizer(optimizer(), [["a"]], [0.1])


def test_refuses_a_user_subclass():
    class MyAdam(keras.optimizers.Adam):
        pass

    with pytest.raises(ValueError, match=r"argument `optimizer`. Expected a Keras SGD"):
        LayerRateOptimizer(MyAdam(), [["a"]], [0.1])


def test_refuses_a_built_optimizer():
    template = keras.optimizers.SGD()
    template.build([keras.Variable(np.zeros(2))])
    with pytest.raises(ValueError, match=r"argument `optimizer`.*not built yet"):
        LayerRateOptimizer(template, [["a"]], [0.1])


@pytest.mark.parametrize(
    ("groups", "multipliers", "match"),
    [
        ("a", [0.1], r"argument `groups`. Expected a list of lists of variable paths"),
        ([["a", 1]], [0.1], r"argument `groups`. Expected a list of lists"),
        ([["a"], ["a"]], [0.1, 0.2], r"argument `groups`.*repeated: \['a'\]"),
        ([["a"]], [0.1, 0.2], r"argument `multipliers`. Expected a list of 1 floats"),
        ([["a"]], 0.1, r"argument `multipliers`. Expected a list of 1 floats"),
        ([["a"]], [0.0], r"argument `multipliers`. Expected floats > 0"),
        ([["a"]], [float("nan")], r"argument `multipliers`"),
    ],
)
def test_refuses_bad_groups_and_multipliers(groups, multipliers, match):
    with pytest.raises(ValueError, match=match):
        LayerRateOptimizer(keras.optimizers.SGD(), groups, multipliers)


def test_build_refuses_a_path_shared_by_two_variables():
    first = keras.Variable(np.zeros(2), name="w")
    second = keras.Variable(np.zeros(2), name="w")
    optimizer = LayerRateOptimizer(keras.optimizers.SGD(), [[first.path]], [0.1])
    with pytest.raises(
        ValueError, match=r"argument `groups`.*'w' names several variables"
    ):
        optimizer.build([first, second])
