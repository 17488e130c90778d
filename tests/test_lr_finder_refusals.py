"""lr_finder: refused curves, arguments and data, and the long-sweep warning."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from kerasx.lr_finder import (
    LRFinderResult,
    find_learning_rate,
    minimum,
    smooth,
    steep,
    suggest,
    suggestion_range,
    valley,
)

RULES = [valley, steep, minimum]


def make_model(loss="mse"):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), loss)
    return model


def data(samples=16):
    x = np.linspace(-1, 1, 2 * samples, dtype="float32").reshape(samples, 2)
    return x, x[:, :1] - x[:, 1:]


@pytest.mark.parametrize("num_steps", [-5, 2.5, "10", True])
def test_suggestion_range_refuses_a_bad_num_steps(num_steps):
    with pytest.raises(
        ValueError,
        match=r"`num_steps`\. Expected an integer >= 0 or None\. Received: "
        rf"num_steps={num_steps!r}$",
    ):
        suggestion_range([1.0] * 10, num_steps)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
@pytest.mark.parametrize(
    ("rates", "losses", "match"),
    [
        (
            [],
            [],
            r"`rates`\. Expected a curve of at least 2 points\. "
            r"Received: rates=<0 point\(s\)>$",
        ),
        ([0.1], [1.0], r"Received: rates=<1 point\(s\)>$"),
        (
            [0.1, 0.2, 0.3],
            [1.0, 2.0],
            r"`losses`\. Expected as many values as `rates` \(3\)\. "
            r"Received: losses=<2 values>$",
        ),
        (
            [-1.0, -2.0, 0.1],
            [3.0, 2.0, 1.0],
            r"`rates`\. Expected finite learning rates > 0\. Received: rates=<2 "
            r"value\(s\) not finite and > 0, the first -1\.0 at index 0>$",
        ),
        (
            [0.1, 0.0, np.inf],
            [3.0, 2.0, 1.0],
            r"rates=<2 value\(s\) not finite and > 0, the first 0\.0 at index 1>$",
        ),
        (
            [0.1, 0.2, 0.3],
            [3.0, np.nan, 1.0],
            r"`losses`\. Expected finite losses \(`suggest` cuts the curve at the "
            r"first non-finite one\)\. Received: losses=<nan at index 1>$",
        ),
    ],
)
def test_rules_refuse_bad_curves(rule, rates, losses, match):
    with pytest.raises(ValueError, match=match):
        rule(rates, losses)


def test_rules_on_a_two_point_curve():
    # valley: a run of 2 points from index 0 gives index -1: the first rate, not
    # the last, where fastai's indexing wraps around. steep: the only slope.
    assert valley([0.1, 1.0], [2.0, 1.0]) == 0.1
    assert steep([0.1, 1.0], [2.0, 1.0]) == 0.1
    assert minimum([0.1, 1.0], [2.0, 1.0]) == 0.1


@pytest.mark.parametrize(
    ("rates", "losses", "match"),
    [
        (
            [0.1, 0.2],
            [1.0] * 10,
            r"`smoothed_losses`\. Expected as many values as `rates` \(2\)\. "
            r"Received: smoothed_losses=<10 values>$",
        ),
        (
            [0.1, -0.2],
            [1.0, 1.0],
            r"`rates`\. Expected finite learning rates > 0\. .*-0\.2 at index 1>$",
        ),
        (
            [[0.1, 0.2]],
            [1.0, 1.0],
            r"`rates`\. Expected a 1-D sequence of floats\. "
            r"Received: rates=<array of shape \(1, 2\)>$",
        ),
    ],
)
def test_suggest_refuses_bad_curves(rates, losses, match):
    with pytest.raises(ValueError, match=match):
        suggest(rates, losses)


def test_short_curves_still_suggest_nan():
    assert all(np.isnan(list(suggest([], []).values())))


def test_smooth_and_from_losses_refuse_bad_input():
    with pytest.raises(
        ValueError,
        match=r"`losses`\. Expected a 1-D sequence of floats\. Received: losses='ab'$",
    ):
        smooth("ab")
    with pytest.raises(
        ValueError,
        match=r"`losses`\. Expected as many values as `rates` \(2\)\. "
        r"Received: losses=<3 values>$",
    ):
        LRFinderResult.from_losses([0.1, 0.2], [1.0, 2.0, 3.0])
    with pytest.raises(
        ValueError,
        match=r"`stop_reason`\. Expected one of \['completed', 'diverged', "
        r"'non-finite loss', 'data exhausted', 'stopped by a callback', "
        r"'flat loss curve', 'no trainable weights'\]\. "
        r"Received: stop_reason='done'$",
    ):
        LRFinderResult.from_losses([0.1, 0.2], [1.0, 2.0], stop_reason="done")


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (
            dict(y=None),
            r"`y`\. Expected targets for array `x`, as the model's loss needs them "
            r"\(only a dataset or generator can yield its own `\(x, y\)` "
            r"batches\)\. Received: y=None$",
        ),
        (
            dict(x=None),
            r"`x`\. Expected input data \(arrays, a dataset, a "
            r"`keras\.utils\.PyDataset` or a generator\)\. Received: x=None$",
        ),
        (
            dict(callbacks=None),
            r"`callbacks`\. Expected a sequence of keras\.callbacks\.Callback "
            r"instances\. Received: callbacks=None$",
        ),
        (
            dict(callbacks=["progress"]),
            r"`callbacks`\. .*Received: callbacks=\['progress'\]$",
        ),
        (
            dict(min_rate=1e-45),
            r"`min_rate`\. Expected a float in \[1\.1754944e-38, 3\.4028235e\+38\] "
            r"\(a positive normal float32: .*\)\. Received: min_rate=1e-45$",
        ),
        (
            dict(min_rate=1e-3, max_rate=1e39),
            r"`max_rate`\. Expected a float in \[1\.1754944e-38, 3\.4028235e\+38\].*"
            r"Received: max_rate=1e\+39$",
        ),
        (
            dict(min_rate=1e-30, max_rate=1e30),
            r"`max_rate`\. Expected a float with max_rate / min_rate <= "
            r"3\.4028235e\+38 \(the sweep's growth is computed in float32; it is "
            r"1e\+60\)\. Received: max_rate=1e\+30$",
        ),
        (
            dict(min_rate=1.0, max_rate=1.0 + 1e-9),
            r"`max_rate`\. Expected a float far enough above min_rate=1\.0 that the "
            r"per-step factor \(max_rate / min_rate\) \*\* \(1 / \(2 - 1\)\) = "
            r"1\.000000001 is > 1 in float32 \(else every step has the same "
            r"rate\)\. Received: max_rate=1\.000000001$",
        ),
    ],
)
def test_find_learning_rate_refusals(arguments, match):
    x, y = data()
    arguments = {"x": x, "y": y, "batch_size": 8, **arguments}
    with pytest.raises(ValueError, match=match):
        find_learning_rate(make_model(), **arguments)


class SquaredOutput(keras.layers.Layer):
    """Adds `mean(outputs ** 2)` as the loss: a model that needs no targets."""

    def call(self, inputs):
        self.add_loss(keras.ops.mean(keras.ops.square(inputs)))
        return inputs


def test_a_model_without_a_compiled_loss_needs_no_targets():
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1), SquaredOutput()]
    )
    model.compile(keras.optimizers.SGD(0.01))
    result = find_learning_rate(
        model, data()[0], batch_size=8, min_rate=1e-3, max_rate=1e-2, num_steps=2
    )
    np.testing.assert_allclose(result.rates, [1e-3, 1e-2], rtol=1.2e-7)


class Abort(Exception):
    pass


class AbortOnTrainBegin(keras.callbacks.Callback):
    """Ends the sweep before its first step: the warning comes before it."""

    def on_train_begin(self, logs=None):
        raise Abort


def test_a_sweep_of_more_than_ten_passes_warns():
    # 128 samples in batches of 32: 4 batches a pass; 10**7 steps, 2500000 passes.
    x, y = data(128)
    with (
        pytest.warns(
            UserWarning,
            match=r"^find_learning_rate: the sweep of 10000000 steps makes 2500000 "
            r"passes over the data \(4 batch\(es\) each\), more than 10; a range "
            r"test usually needs one\. Pass a smaller `num_steps` \(or `epochs`\) "
            r"unless this is intended\.$",
        ),
        pytest.raises(Abort),
    ):
        find_learning_rate(
            make_model(), x, y, num_steps=10**7, callbacks=[AbortOnTrainBegin()]
        )


@pytest.mark.parametrize(("num_steps", "warns"), [(40, False), (41, True)])
def test_the_warning_starts_above_ten_passes(num_steps, warns):
    x, y = data(128)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(Abort):
        warnings.simplefilter("always")
        find_learning_rate(
            make_model(), x, y, num_steps=num_steps, callbacks=[AbortOnTrainBegin()]
        )
    messages = [str(w.message) for w in caught if "passes over" in str(w.message)]
    assert len(messages) == int(warns)
