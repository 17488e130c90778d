"""lr_finder on any loss: the divergence rule, flat curves, frozen models, skip and
beta options, and fastai's `slide` rule.

Reference values: hand-computed curves (each test says how), NumPy float64 SGD
for the sweep's losses (rtol 1e-4, as in test_lr_finder.py: batch losses are
recovered from Keras' float32 running mean), and fastai 2.8.12's `slide` recorded
in `tests/fixtures/lr_find_fastai.json` (rtol 1e-12: the same float64 arithmetic;
fastai's own `lr_find` answer is a float32 rate, compared after rounding ours to
float32).
"""

from __future__ import annotations

import json
import math
import pathlib
import warnings

import keras
import numpy as np
import pytest

from kerasx.lr_finder import (
    _STOP_REASONS,
    FLAT,
    FLAT_TOLERANCE,
    NO_TRAINABLE_WEIGHTS,
    LRFinderResult,
    _diverged,
    find_learning_rate,
    slide,
    smooth,
    suggest,
    suggestion_range,
)

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "lr_find_fastai.json"
CURVES = json.loads(FIXTURE.read_text())["curves"]
RULE_NAMES = {"valley", "steep", "minimum", "slide"}

# The reference sweep of test_lr_finder.py: Dense(1) from zeros, SGD, 8 batches of 4.
BATCH, BATCHES, MIN_RATE, MAX_RATE = 4, 8, 1e-3, 1e-1


def linear_data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(BATCH * BATCHES, 2)).astype("float32")
    y = (x @ np.array([[0.7], [-1.3]]) + 0.5).astype("float32")
    return x, y


def reference_losses():
    """Float64 SGD on MSE with `rate_k = MIN_RATE * 100 ** (k / 7)`."""
    x, y = (a.astype("float64") for a in linear_data())
    kernel, bias, losses = np.zeros((2, 1)), 0.0, []
    for k in range(BATCHES):
        xb, yb = x[BATCH * k : BATCH * (k + 1)], y[BATCH * k : BATCH * (k + 1)]
        error = xb @ kernel + bias - yb
        rate = MIN_RATE * (MAX_RATE / MIN_RATE) ** (k / (BATCHES - 1))
        losses.append(float(np.mean(error**2)))
        kernel = kernel - rate * 2.0 * xb.T @ error / BATCH
        bias = bias - rate * 2.0 * float(np.mean(error))
    return np.array(losses)


def shifted_mse(y_true, y_pred):
    """MSE minus 10: the same gradients, every loss negative."""
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1) - 10.0


def linear_model(loss="mse", trainable=True, optimizer=None):
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(1, kernel_initializer="zeros", trainable=trainable)
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer or keras.optimizers.SGD(0.5), loss)
    return model


def sweep(model, **kwargs):
    x, y = linear_data()
    options = dict(batch_size=BATCH, min_rate=MIN_RATE, max_rate=MAX_RATE)
    return find_learning_rate(model, x, y, shuffle=False, **{**options, **kwargs})


# --- The divergence rule ---------------------------------------------------


@pytest.mark.parametrize(
    ("smoothed", "best", "first", "negative", "diverged"),
    [
        # No negative loss yet: fastai's smoothed > 4 * best, whatever `first`.
        (4.0, 1.0, 9.0, False, False),
        (4.000000001, 1.0, 9.0, False, True),
        (0.4, 0.1, 0.1, False, False),
        (0.41, 0.1, 0.1, False, True),
        (1e-9, 0.0, 1.0, False, True),  # fastai's rule at an exact zero
        # A negative loss seen: scale = max(|best|, first - best).
        # best -1, first -0.5: scale max(1, 0.5) = 1; diverged above -1 + 3 = 2.
        (2.0, -1.0, -0.5, True, False),
        (2.01, -1.0, -0.5, True, True),
        # best -0.5, first 2: scale max(0.5, 2.5) = 2.5; above -0.5 + 7.5 = 7.
        (7.0, -0.5, 2.0, True, False),
        (7.01, -0.5, 2.0, True, True),
        # fastai's rule would call this diverged (-9.5 > 4 * -10 = -40).
        (-9.5, -10.0, -9.0, True, False),
        # best 0.1 > 0 after a negative loss, first 0.5: scale max(0.1, 0.4) =
        # 0.4, diverged above 0.1 + 1.2 = 1.3 (fastai's rule: above 0.4).
        (1.3, 0.1, 0.5, True, False),
        (1.31, 0.1, 0.5, True, True),
        # best 0: scale = first; first 1: diverged above 0 + 3 * 1 = 3.
        (3.0, 0.0, 1.0, True, False),
        (3.01, 0.0, 1.0, True, True),
        # No scale (best 0, no fall): nothing is divergence.
        (5.0, 0.0, 0.0, True, False),
    ],
)
def test_the_divergence_rule(smoothed, best, first, negative, diverged):
    assert _diverged(smoothed, best, first, 4.0, negative) is diverged


def test_the_rule_is_fastai_s_for_positive_losses():
    rng = np.random.default_rng(3)
    for best, smoothed, first, threshold in rng.uniform(
        1e-3, 10.0, size=(200, 4)
    ).tolist():
        threshold = 1.0 + threshold
        expected = bool(smoothed > threshold * best)
        assert _diverged(smoothed, best, first, threshold, False) is expected


def test_a_negative_loss_sweeps_as_its_positive_twin():
    # With fastai's rule the shifted loss "diverged" at its first step
    # (-9.5 > 4 * -9.5); now it runs all 8 steps, as MSE itself does.
    result = sweep(linear_model(shifted_mse), divergence_threshold=4.0)
    twin = sweep(linear_model(), divergence_threshold=4.0)
    assert result.stop_reason == twin.stop_reason == "completed"
    assert len(result.rates) == BATCHES
    np.testing.assert_allclose(result.losses, reference_losses() - 10.0, rtol=1e-4)
    np.testing.assert_allclose(result.rates, twin.rates, rtol=0)


def test_a_negative_loss_that_blows_up_stops_where_the_rule_says():
    # Rates up to 1e4 make SGD on MSE blow up within the 8 steps. The smoothed
    # shifted loss falls to best = -8.24 at step 4 (first -8.12: scale
    # max(8.24, 0.13) = 8.24), is 0.98 at step 5 (a rise of 9.2 < 3 * 8.24:
    # on) and 3.8e5 at step 6: diverged, one step after MSE itself (step 5:
    # 10.98 > 4 * 1.755), whose rule is fastai's.
    result = sweep(linear_model(shifted_mse), max_rate=1e4, divergence_threshold=4.0)
    twin = sweep(linear_model(), max_rate=1e4, divergence_threshold=4.0)
    assert result.stop_reason == twin.stop_reason == "diverged"
    assert (len(result.rates), len(twin.rates)) == (7, 6)
    smoothed = result.smoothed_losses

    def crosses(k):  # the rule in float64 on the recorded curve
        best = float(np.min(smoothed[: k + 1]))
        scale = max(abs(best), float(smoothed[0]) - best)
        return smoothed[k] - best > 3.0 * scale

    assert crosses(6) and not any(crosses(k) for k in range(6))
    assert float(np.min(smoothed)) == pytest.approx(-8.24456765, rel=1e-5)


def test_cosine_similarity_runs_the_whole_sweep():
    # Keras' cosine_similarity loss is -cos, in [-1, 1]. From an identity
    # kernel every batch loss is negative: fastai's rule stopped the old sweep
    # at its first step (-0.66 > 4 * -0.66). Now a rise must exceed
    # 3 * max(|best|, first - best) = 3 * 0.77, more than the loss can rise.
    x, y = linear_data()
    y = np.concatenate([y, -y], axis=1)
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(2, kernel_initializer="identity")
    model = keras.Model(inputs, dense(inputs))
    model.compile(keras.optimizers.SGD(0.01), "cosine_similarity")
    result = find_learning_rate(
        model, x, y, batch_size=BATCH, min_rate=1e-3, max_rate=10.0, shuffle=False
    )
    assert result.stop_reason == "completed" and len(result.rates) == BATCHES
    assert np.all(result.losses < 0) and np.all(result.losses >= -1.0 - 1e-6)
    # The first batch, before any update: -mean cos(x_i, y_i) in float64.
    xb, yb = x[:BATCH].astype("float64"), y[:BATCH].astype("float64")
    cosines = np.sum(xb * yb, axis=1) / np.linalg.norm(xb, axis=1)
    cosines = cosines / np.linalg.norm(yb, axis=1)
    np.testing.assert_allclose(result.losses[0], -np.mean(cosines), rtol=1e-5)
    assert float(np.min(result.smoothed_losses)) == pytest.approx(-0.7702, abs=1e-4)


# --- Flat curves and frozen models -----------------------------------------


def test_flat_tolerance_boundary():
    rates = 10.0 ** np.linspace(-4, 0, 20)
    # Skipped: the first 20 // 10 = 2 points and the last 5; used: [2, 15).
    inside = np.full(20, 1.0)
    inside[2:15] = np.linspace(1.0, 1.001, 13)  # spans 1e-3 of 1.001: flat
    outside = inside.copy()
    outside[14] = 1.0011  # spans 1.1e-3 of 1.0011: not flat
    outside[:2] = outside[15:] = 5.0  # the skipped points do not count
    with pytest.warns(UserWarning, match="The loss curve is flat"):
        flat = LRFinderResult.from_losses(rates, inside, smoothing=0.0)
    assert flat.stop_reason == FLAT == "flat loss curve"
    assert set(flat.suggestions) == RULE_NAMES
    assert all(math.isnan(value) for value in flat.suggestions.values())
    assert math.isnan(flat.suggestion)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        informative = LRFinderResult.from_losses(rates, outside, smoothing=0.0)
    assert informative.stop_reason == "completed"
    # Increasing over the used points: the lowest is the first used rate.
    assert informative.suggestions["minimum"] == pytest.approx(rates[2] / 10)
    assert FLAT_TOLERANCE == 1e-3


def test_an_all_zero_curve_is_flat():
    with pytest.warns(
        UserWarning,
        match=r"^The loss curve is flat: over the 13 points the suggestion rules "
        r"use, the smoothed loss spans 0 \(from 0 to 0\), at most 0\.001 of its "
        r"magnitude, so no learning rate can be read off it and every suggestion "
        r"is NaN\.",
    ):
        result = LRFinderResult.from_losses(10.0 ** -np.arange(20.0)[::-1], [0.0] * 20)
    assert result.stop_reason == FLAT
    assert all(
        math.isnan(value) for value in suggest(result.rates, [0.0] * 20).values()
    )


class Zero(keras.layers.Layer):
    """Multiplies by zero: the loss does not depend on the weights."""

    def call(self, inputs):
        return inputs * 0.0


def test_a_constant_loss_warns_and_suggests_nothing():
    x, _ = linear_data()
    inputs = keras.Input((2,))
    model = keras.Model(inputs, Zero()(keras.layers.Dense(1)(inputs)))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    with pytest.warns(UserWarning, match="The loss curve is flat: over the 3 points"):
        result = find_learning_rate(
            model, x, np.full((32, 1), 0.5, "float32"), batch_size=BATCH
        )
    # Every batch loss is (0 - 0.5) ** 2 = 0.25.
    np.testing.assert_allclose(result.losses, 0.25, rtol=1e-6)
    assert result.stop_reason == FLAT and len(result.rates) == BATCHES
    assert all(math.isnan(value) for value in result.suggestions.values())


def test_a_model_without_trainable_weights_warns_and_runs_no_sweep():
    model = linear_model(trainable=False)
    iterations = int(model.optimizer.iterations)
    with pytest.warns(
        UserWarning,
        match=r"^find_learning_rate: model '.*' has no trainable weights, so its "
        r"loss cannot depend on the learning rate: no sweep ran and every "
        r"suggestion is NaN\. Unfreeze some layers",
    ):
        result = sweep(model)
    assert result.stop_reason == NO_TRAINABLE_WEIGHTS == "no trainable weights"
    assert len(result.rates) == len(result.losses) == 0
    assert result.num_steps == BATCHES
    assert set(result.suggestions) == RULE_NAMES
    assert all(math.isnan(value) for value in result.suggestions.values())
    assert int(model.optimizer.iterations) == iterations
    assert float(model.optimizer.learning_rate) == 0.5


def test_from_losses_accepts_every_stop_reason():
    rates, losses = [1e-3, 1e-2, 1e-1], [3.0, 2.0, 1.0]
    assert _STOP_REASONS[-2:] == (FLAT, NO_TRAINABLE_WEIGHTS)
    for reason in _STOP_REASONS:
        result = LRFinderResult.from_losses(
            rates, losses, 0.0, stop_reason=reason, skip_start=0, skip_end=0
        )
        assert result.stop_reason == reason
    # No trainable weights: NaN whatever the curve (here steep would be 1e-3).
    assert math.isnan(result.suggestions["steep"])


# --- skip_start, skip_end, beta --------------------------------------------


def test_skip_start_and_skip_end():
    losses = np.arange(30.0)
    assert suggestion_range(losses, 100) == (10, 25)  # fastai: [100 // 10 : -5]
    assert suggestion_range(losses, 100, skip_start=0) == (0, 25)
    assert suggestion_range(losses, skip_start=3, skip_end=0) == (3, 30)
    assert suggestion_range(losses, skip_end=7) == (3, 23)
    rates = 10.0 ** np.linspace(-5, 0, 51)
    curve = 1.0 + (np.log10(rates) + 2.0) ** 2  # lowest at 1e-2 (index 30)
    # Skipping the minimum away: used [5, 25), the lowest is the last, index 24.
    assert suggest(rates, curve, skip_end=26)["minimum"] == pytest.approx(
        rates[24] / 10
    )
    assert suggest(rates, curve, skip_start=0)["steep"] == pytest.approx(rates[0])
    result = LRFinderResult.from_losses(rates, curve, 0.0, skip_start=40, skip_end=0)
    assert result.suggestion_range == (40, 51)
    assert (result.skip_start, result.skip_end) == (40, 0)
    assert result.suggestions["minimum"] == pytest.approx(rates[40] / 10)


def test_find_learning_rate_passes_skips_and_beta():
    result = sweep(
        linear_model(), skip_start=1, skip_end=2, beta=0.5, divergence_threshold=1e9
    )
    assert result.suggestion_range == (1, 6)
    assert (result.skip_start, result.skip_end) == (1, 2)
    np.testing.assert_allclose(result.smoothed_losses, smooth(result.losses, 0.5))
    np.testing.assert_allclose(result.losses, reference_losses(), rtol=1e-4)


def test_beta_is_fastai_s_name_for_smoothing():
    # a = [2, 2, 1.5]; corrections 1 - 0.5 ** k = [0.5, 0.75, 0.875].
    expected = [4.0, 8.0 / 3.0, 1.5 / 0.875]
    for kwargs in (dict(beta=0.5), dict(smoothing=0.5), dict(smoothing=0.5, beta=0.5)):
        np.testing.assert_allclose(smooth([4.0, 2.0, 1.0], **kwargs), expected)
        result = LRFinderResult.from_losses(
            [1e-3, 1e-2, 1e-1], [4.0, 2.0, 1.0], **kwargs
        )
        np.testing.assert_allclose(result.smoothed_losses, expected)
    # The default is fastai's 0.98: 4 then (0.02 * 4 * 0.98 + 0.02 * 2) / (1 - 0.98**2).
    np.testing.assert_allclose(
        smooth([4.0, 2.0]), [4.0, (0.0784 + 0.04) / (1 - 0.98**2)], rtol=1e-15
    )


BETA_ERRORS = [
    (
        dict(beta=1.0),
        r"`beta`\. Expected a float in \[0, 1\) or None\. "
        r"Received: beta=1\.0$",
    ),
    (
        dict(beta="0.9"),
        r"`beta`\. Expected a float in \[0, 1\) or None\. "
        r"Received: beta='0\.9'$",
    ),
    (dict(beta=math.nan), r"`beta`\. Expected a float in \[0, 1\) or None"),
    (
        dict(smoothing=-0.1),
        r"`smoothing`\. Expected a float in \[0, 1\) or None\. "
        r"Received: smoothing=-0\.1$",
    ),
    (
        dict(smoothing=0.9, beta=0.5),
        r"`beta`\. Expected the same value as smoothing=0\.9 or None \(`beta` is "
        r"fastai's name for `smoothing`; pass one of them\)\. Received: beta=0\.5$",
    ),
]
SKIP_ERRORS = [
    (
        dict(skip_start=-1),
        r"`skip_start`\. Expected an integer >= 0 or None\. "
        r"Received: skip_start=-1$",
    ),
    (dict(skip_start=1.5), r"`skip_start`\. .*Received: skip_start=1\.5$"),
    (dict(skip_start=True), r"`skip_start`\. .*Received: skip_start=True$"),
    (
        dict(skip_end=-1),
        r"`skip_end`\. Expected an integer >= 0\. "
        r"Received: skip_end=-1$",
    ),
    (
        dict(skip_end=None),
        r"`skip_end`\. Expected an integer >= 0\. "
        r"Received: skip_end=None$",
    ),
]


@pytest.mark.parametrize(("kwargs", "match"), BETA_ERRORS + SKIP_ERRORS)
def test_find_learning_rate_refuses_bad_options(kwargs, match):
    model = linear_model()
    with pytest.raises(ValueError, match=match):
        sweep(model, **kwargs)
    assert int(model.optimizer.iterations) == 0


@pytest.mark.parametrize(("kwargs", "match"), BETA_ERRORS + SKIP_ERRORS)
def test_from_losses_refuses_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRFinderResult.from_losses([1e-3, 1e-2], [2.0, 1.0], **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), BETA_ERRORS)
def test_smooth_refuses_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        smooth([2.0, 1.0], **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), SKIP_ERRORS)
def test_suggest_and_suggestion_range_refuse_bad_skips(kwargs, match):
    with pytest.raises(ValueError, match=match):
        suggest([1e-3, 1e-2], [2.0, 1.0], **kwargs)
    with pytest.raises(ValueError, match=match):
        suggestion_range([2.0, 1.0], **kwargs)


# --- slide -----------------------------------------------------------------


def test_slide_on_a_hand_computed_curve():
    rates = 10.0 ** np.linspace(-5, 0, 51)
    # Flat at 2 (0..19), falling by 0.05 a point (20..50), a bump on the last 10.
    losses = np.concatenate([np.full(20, 2.0), np.linspace(2.0, 0.5, 31)])
    losses[-10:] += 0.3 * np.arange(10) ** 2
    # np.gradient is -0.05 at 21..40 and rises from 41 on. The window [l, r] =
    # [35, 50] slides left while |g[r] - g[l]| > 0.005; [25, 40] is the first
    # level one, so the last passing left end is 26: 10 ** (-5 + 2.6).
    assert slide(rates, losses) == pytest.approx(10**-2.4, rel=1e-12)
    assert slide(rates, losses, adjust_value=0.5) == pytest.approx(
        0.5 * 10**-2.4, rel=1e-12
    )
    # A window of 5: [36, 41] passes (g[41] = 0.1), [35, 40] is level: 36.
    assert slide(rates, losses, lr_diff=5) == pytest.approx(10**-1.4, rel=1e-12)
    # thresh above every slope difference: the first window [35, 50] stops it.
    assert slide(rates, losses, thresh=100.0) == pytest.approx(rates[35], rel=1e-12)


def test_slide_edge_cases():
    rates = 10.0 ** np.linspace(-4, -1, 20)
    # A straight line: every window is level, the answer is the first window's
    # left end, 20 - 1 - 15 = 4.
    assert slide(rates, np.linspace(3.0, 1.0, 20)) == rates[4]
    # 0.01 k**2: slopes 0.02 k apart by 0.3 across every window: all pass, the
    # window runs off the start and the answer is the first rate.
    assert slide(rates, 0.01 * np.arange(20.0) ** 2) == rates[0]
    # k**2 / 6000: central slopes k / 3000, one-sided 1 / 6000 at 0 and
    # 37 / 6000 at 19. The first window [4, 19] differs by 29 / 6000 = 0.00483
    # and the others by 15 / 3000 = 0.005 (29 / 6000 again for [0, 15]).
    curve = np.arange(20.0) ** 2 / 6000
    assert slide(rates, curve, thresh=0.0049) == rates[4]  # level at once
    assert slide(rates, curve, thresh=0.0048) == rates[0]  # never level
    # Fewer than lr_diff + 1 points: no window (fastai raises IndexError).
    assert math.isnan(slide(rates[:15], np.linspace(3.0, 1.0, 15)))
    assert slide(rates[:16], np.linspace(3.0, 1.0, 16)) == rates[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            dict(lr_diff=0),
            r"`lr_diff`\. Expected an integer >= 1\. "
            r"Received: lr_diff=0$",
        ),
        (
            dict(lr_diff=2.0),
            r"`lr_diff`\. Expected an integer >= 1\. "
            r"Received: lr_diff=2\.0$",
        ),
        (
            dict(thresh=-0.1),
            r"`thresh`\. Expected a float >= 0\. "
            r"Received: thresh=-0\.1$",
        ),
        (
            dict(thresh=math.inf),
            r"`thresh`\. Expected a float >= 0\. "
            r"Received: thresh=inf$",
        ),
        (
            dict(adjust_value=0.0),
            r"`adjust_value`\. Expected a float > 0\. "
            r"Received: adjust_value=0\.0$",
        ),
    ],
)
def test_slide_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        slide([1e-3, 1e-2, 1e-1], [3.0, 2.0, 1.0], **kwargs)


def test_slide_refuses_bad_curves():
    with pytest.raises(ValueError, match=r"Received: rates=<1 point\(s\)>$"):
        slide([0.1], [1.0])
    with pytest.raises(ValueError, match=r"`losses`\. Expected finite losses"):
        slide([0.1, 0.2], [1.0, math.nan])


@pytest.mark.parametrize("curve", CURVES, ids=[curve["name"] for curve in CURVES])
def test_slide_agrees_with_fastai(curve):
    rates = np.array(curve["rates"], dtype="float64")
    smoothed = np.array([float(v) for v in curve["smoothed_losses"]])
    recorded = curve["slide"]
    ours = suggest(rates, smoothed, curve["num_it"])["slide"]
    np.testing.assert_allclose(ours, recorded["float64"], rtol=1e-12)
    # fastai's lr_find runs the rule on float32 tensors: the same point, rounded.
    np.testing.assert_allclose(np.float32(ours), recorded["lr_find"], rtol=1e-12)
    finite = np.isfinite(smoothed)
    np.testing.assert_allclose(
        slide(rates[finite], smoothed[finite]),
        recorded["untrimmed_float64"],
        rtol=1e-12,
    )
    result = LRFinderResult.from_losses(
        rates,
        [float(v) for v in curve["raw_losses"]],
        beta=curve["beta"],
        num_steps=curve["num_it"],
    )
    tolerance = 1e-6 if curve["name"] == "real_sweep" else 1e-12
    np.testing.assert_allclose(
        result.suggestions["slide"], recorded["float64"], rtol=tolerance
    )


def test_plot_marks_four_suggestions_and_skips_nan_ones():
    import matplotlib

    matplotlib.use("Agg")
    from kerasx.lr_finder import plot_lr_vs_loss

    rates = 10.0 ** np.linspace(-5, 0, 51)
    losses = 1.0 + (np.log10(rates) + 2.0) ** 2
    ax = plot_lr_vs_loss(LRFinderResult.from_losses(rates, losses, 0.0))
    assert len(ax.lines) == 6  # raw, smoothed, four suggestions
    # On the parabola every window passes: the first used rate, 10 ** -4.5.
    assert ax.get_legend_handles_labels()[1][-1] == "slide: 3.16e-05"
    with pytest.warns(UserWarning, match="The loss curve is flat"):
        flat = LRFinderResult.from_losses(rates, np.ones(51))
    assert len(plot_lr_vs_loss(flat).lines) == 2  # no marker for a NaN
    with pytest.warns(UserWarning, match="has no trainable weights"):
        frozen = sweep(linear_model(trainable=False))
    assert len(plot_lr_vs_loss(frozen).lines) == 2
