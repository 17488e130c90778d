"""Tests for the shared graph-rewrite helper `kerasx.transforms.rewrite_model`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.transforms import SKIP, RewriteContext, rewrite_model

layers = keras.layers


def keep(layer, context):
    return None


def relu_to_tanh(layer, context):
    if isinstance(layer, layers.ReLU):
        return layers.Activation("tanh", name=layer.name + "_tanh")
    return None


def skip_dropout(layer, context):
    return SKIP if isinstance(layer, layers.Dropout) else None


def set_dense(layer, kernel, bias):
    layer.set_weights([np.asarray(kernel, "float32"), np.asarray(bias, "float32")])


class Scale(layers.Layer):
    """Multiplies by 2 when `training` is true; a subclassed test layer."""

    def call(self, inputs, training=None):
        return inputs * 2.0 if training else inputs


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def test_sequential_in_sequential_out_with_skip_and_same_layers(rng):
    model = keras.Sequential(
        [keras.Input((3,)), layers.Dense(2), layers.Dropout(0.5), layers.ReLU()],
        name="seq",
    )
    kernel = np.array([[1.0, -1.0], [2.0, 0.5], [-3.0, 1.0]])
    set_dense(model.layers[0], kernel, [0.5, -0.5])
    new = rewrite_model(model, skip_dropout)
    assert isinstance(new, keras.Sequential)
    assert new.name == "seq"
    assert [type(layer) for layer in new.layers] == [layers.Dense, layers.ReLU]
    assert new.layers[0] is model.layers[0] and new.layers[1] is model.layers[2]
    x = rng.normal(size=(4, 3))
    expected = np.maximum(x @ kernel + [0.5, -0.5], 0.0)
    np.testing.assert_allclose(new.predict(x, verbose=0), expected, rtol=1e-5)
    assert len(model.layers) == 3  # the original keeps its Dropout
    assert rewrite_model(model, keep, name="renamed").name == "renamed"


def test_functional_branches_replacement(rng):
    inputs = keras.Input((2,))
    left = layers.ReLU()(layers.Dense(2, name="left")(inputs))
    right = layers.Dense(2, name="right")(inputs)
    added = layers.Add()([left, right])
    outputs = layers.Concatenate()([added, layers.ReLU()(right)])
    model = keras.Model(inputs, outputs, name="branchy")
    w_left, w_right = np.array([[1.0, 2.0], [-1.0, 0.5]]), np.eye(2) * 3.0
    set_dense(model.get_layer("left"), w_left, [0.1, -0.2])
    set_dense(model.get_layer("right"), w_right, [0.0, 1.0])
    new = rewrite_model(model, relu_to_tanh)
    assert new.name == "branchy"
    x = rng.normal(size=(5, 2))
    right_out = x @ w_right + [0.0, 1.0]
    added_out = np.tanh(x @ w_left + [0.1, -0.2]) + right_out
    expected = np.concatenate([added_out, np.tanh(right_out)], axis=-1)
    np.testing.assert_allclose(new.predict(x, verbose=0), expected, rtol=1e-5)
    assert not any(isinstance(layer, layers.ReLU) for layer in new.layers)
    assert sum(isinstance(layer, layers.ReLU) for layer in model.layers) == 2


def test_multi_input_multi_output_dict_structure(rng):
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    total = layers.Add(name="total")([layers.Dropout(0.3)(a), b])
    model = keras.Model({"a": a, "b": b}, [total, layers.ReLU()(total)])
    new = rewrite_model(model, skip_dropout)
    xa, xb = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    total_out, relu_out = new.predict({"a": xa, "b": xb}, verbose=0)
    np.testing.assert_allclose(total_out, xa + xb, rtol=1e-6)
    np.testing.assert_allclose(relu_out, np.maximum(xa + xb, 0.0), rtol=1e-6)


def test_nested_models_are_rewritten_recursively(rng):
    inner_seq = keras.Sequential(
        [keras.Input((2,)), layers.Dropout(0.2), layers.ReLU()], name="inner_seq"
    )
    inner_in = keras.Input((2,))
    inner_fn = keras.Model(inner_in, layers.ReLU()(inner_in), name="inner_fn")
    inputs = keras.Input((2,))
    model = keras.Model(inputs, inner_fn(inner_seq(inputs)), name="outer")
    seen = []
    new = rewrite_model(
        model, lambda layer, ctx: seen.append(layer.name) or relu_to_tanh(layer, ctx)
    )
    new_seq, new_fn = new.get_layer("inner_seq"), new.get_layer("inner_fn")
    assert isinstance(new_seq, keras.Sequential) and new_seq is not inner_seq
    assert new_fn is not inner_fn and "inner_seq" not in seen
    x = rng.normal(size=(3, 2))
    expected = np.tanh(np.tanh(x))
    np.testing.assert_allclose(new.predict(x, verbose=0), expected, rtol=1e-5)
    assert isinstance(inner_seq.layers[-1], layers.ReLU)


def test_shared_layer_gets_one_replacement(rng):
    shared = layers.Dense(2, name="shared")
    a, b = keras.Input((2,)), keras.Input((2,))
    model = keras.Model([a, b], layers.Add()([shared(a), shared(b)]))
    set_dense(shared, [[1.0, 0.0], [0.0, 2.0]], [1.0, 1.0])
    calls = []

    def rule(layer, context):
        if layer is shared:
            calls.append(context.num_calls(layer))
            replacement = layers.Dense(2, name="shared_copy")
            replacement.build((None, 2))
            replacement.set_weights(shared.get_weights())
            return replacement
        return None

    new = rewrite_model(model, rule)
    assert calls == [2]
    copies = [layer for layer in new.layers if layer.name == "shared_copy"]
    assert len(copies) == 1 and len(new.layers) == 4  # 2 inputs, 1 Dense, Add
    xa, xb = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    expected = (xa + xb) * [1.0, 2.0] + 2.0
    np.testing.assert_allclose(new.predict([xa, xb], verbose=0), expected, rtol=1e-5)


def test_masks_pass_through_skipped_and_replaced_layers(rng):
    inputs = keras.Input((4,), dtype="int32")
    embedded = layers.Embedding(5, 2, mask_zero=True)(inputs)
    outputs = layers.GlobalAveragePooling1D()(layers.Dropout(0.5)(embedded))
    model = keras.Model(inputs, outputs)
    table = rng.normal(size=(5, 2))
    model.layers[1].set_weights([table.astype("float32")])
    seen = []

    def rule(layer, context):
        seen.append(layer)
        if isinstance(layer, layers.GlobalAveragePooling1D):
            return layers.GlobalAveragePooling1D(name="new_pool")
        return skip_dropout(layer, context)

    new = rewrite_model(model, rule)
    # The Embedding's mask is a `not_equal` operation, never given to the rule.
    assert all(isinstance(layer, layers.Layer) for layer in seen)
    assert [type(layer).__name__ for layer in new.layers] == [
        "InputLayer",
        "Embedding",
        "GlobalAveragePooling1D",
    ]
    tokens = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    expected = np.stack([table[[1, 2]].mean(0), table[3]])
    np.testing.assert_allclose(new.predict(tokens, verbose=0), expected, rtol=1e-5)


def test_replacement_without_mask_argument():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.BatchNormalization(epsilon=0.0)(inputs))
    # BatchNormalization's recorded call has `mask=None`; Activation takes none.
    new = rewrite_model(model, lambda layer, ctx: layers.Activation("relu"))
    x = np.array([[-1.0, 2.0, 0.5]], "float32")
    np.testing.assert_allclose(new.predict(x, verbose=0), [[0.0, 2.0, 0.5]])


def test_replacement_keeps_call_kwargs(rng):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, Scale(name="scale")(inputs, training=True))
    new = rewrite_model(
        model, lambda layer, ctx: Scale() if isinstance(layer, Scale) else None
    )
    assert isinstance(new.layers[1], Scale) and new.layers[1] is not model.layers[1]
    x = rng.normal(size=(3, 2))
    # Called directly (no outer training flag), the stored `training=True` rules.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)), 2.0 * x, rtol=1e-6)


def test_subclassed_layer_inside_functional_is_kept():
    inputs = keras.Input((2,))
    scale = Scale()
    model = keras.Model(inputs, scale(inputs))
    assert rewrite_model(model, keep).layers[1] is scale


def test_weights_shared_with_original(rng):
    model = keras.Sequential([keras.Input((2,)), layers.Dense(1), layers.Dropout(0.1)])
    new = rewrite_model(model, skip_dropout)
    model.layers[0].kernel.assign(np.array([[2.0], [-1.0]], "float32"))
    model.layers[0].bias.assign(np.array([0.5], "float32"))
    x = rng.normal(size=(3, 2))
    expected = x @ np.array([[2.0], [-1.0]]) + 0.5
    np.testing.assert_allclose(new.predict(x, verbose=0), expected, rtol=1e-5)


def test_context_connections():
    inputs = keras.Input((2,), name="x")
    dense = layers.Dense(2, name="dense")
    relu, add = layers.ReLU(name="relu"), layers.Add(name="add")
    hidden = dense(inputs)
    outputs = add([relu(hidden), hidden])
    context = RewriteContext(keras.Model(inputs, [outputs, hidden]))
    names = lambda found: [layer.name for layer in found]  # noqa: E731
    assert names(context.producers(dense)) == ["x"]
    assert names(context.consumers(dense)) == ["relu", "add"]
    assert names(context.producers(add)) == ["relu", "dense"]
    assert context.consumers(add) == []
    assert context.is_output(add) and context.is_output(dense)
    assert not context.is_output(relu)
    assert context.num_consumer_calls(dense) == 2 and context.num_calls(relu) == 1
    seq = keras.Sequential([keras.Input((2,)), layers.Dense(2), layers.ReLU()])
    seq_context = RewriteContext(seq)
    assert seq_context.producers(seq.layers[1]) == [seq.layers[0]]
    assert seq_context.consumers(seq.layers[0]) == [seq.layers[1]]
    assert seq_context.is_output(seq.layers[1])


def test_subclassed_model_error():
    with pytest.raises(ValueError, match="Model 'sub' of type Subclassed cannot be"):
        rewrite_model(Subclassed(name="sub"), keep)
    inputs = keras.Input((2,))
    nested = keras.Model(inputs, Subclassed(name="inner")(inputs))
    with pytest.raises(ValueError, match=r"'inner' .* subclassed Model"):
        rewrite_model(nested, keep)


def test_skip_multi_input_layer_error():
    a, b = keras.Input((2,)), keras.Input((2,))
    model = keras.Model([a, b], layers.Add(name="add")([a, b]))
    with pytest.raises(ValueError, match="Layer 'add' cannot be skipped"):
        rewrite_model(model, lambda layer, ctx: SKIP)


def test_invalid_model():
    with pytest.raises(ValueError, match="Invalid value received for argument `model`"):
        rewrite_model(layers.Dense(2), keep)


def test_invalid_rule():
    model = keras.Sequential([keras.Input((2,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="Invalid value received for argument `rule`"):
        rewrite_model(model, "relu")


def test_invalid_name():
    model = keras.Sequential([keras.Input((2,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="Invalid value received for argument `name`"):
        rewrite_model(model, keep, name="")


def test_invalid_rule_result():
    model = keras.Sequential([keras.Input((2,)), layers.Dense(2, name="d")])
    with pytest.raises(ValueError, match="returned by `rule` for layer 'd'"):
        rewrite_model(model, lambda layer, ctx: "tanh")
