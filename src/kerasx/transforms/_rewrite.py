"""Rebuild a Sequential or Functional model with some layers replaced.

This is the one graph-rewrite helper behind `kerasx.uncertainty.to_mc`,
`kerasx.uncertainty.from_mc` and `kerasx.transforms`. A transform is a
`rule(layer, context)` returning what the layer becomes; `rewrite_model`
walks the graph (nested Sequential/Functional models included), applies the
rule once per layer and calls the results on the same inputs with the same
call arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Final

import keras

from kerasx import _keras_internals


class _Skip:
    """Type of the `SKIP` sentinel."""

    _instance: _Skip | None = None

    def __new__(cls) -> _Skip:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SKIP"

    def __reduce__(self) -> str:
        return "SKIP"


SKIP: Final = _Skip()
"""Rule result meaning: drop this layer, its output becomes its single input.

A `rewrite_model` rule returns `SKIP` for a layer to leave it out of the new
model: every consumer of the layer's output reads the layer's input instead
(a `Dropout` removed for export, a BatchNorm folded into the layer before it).
Only a layer called on a single input tensor can be skipped: `rewrite_model`
raises a `ValueError` naming any other. `SKIP` is a singleton (compare with
`is`; it pickles and copies to itself) and reads `SKIP` when printed.

Example:

```python
>>> import keras
>>> from kerasx.transforms import SKIP, rewrite_model
>>> model = keras.Sequential(
...     [
...         keras.Input((4,)),
...         keras.layers.Dense(8),
...         keras.layers.Dropout(0.5),
...         keras.layers.Dense(2),
...     ]
... )
>>> def drop_dropout(layer, context):
...     return SKIP if isinstance(layer, keras.layers.Dropout) else None
>>> export = rewrite_model(model, drop_dropout)
>>> [type(layer).__name__ for layer in export.layers]
['Dense', 'Dense']
>>> SKIP
SKIP

```
"""

Rule = Callable[
    [keras.layers.Layer, "RewriteContext"], keras.layers.Layer | _Skip | None
]


def _unique(layers: list[keras.layers.Layer]) -> list[keras.layers.Layer]:
    seen: set[int] = set()
    return [layer for layer in layers if not (id(layer) in seen or seen.add(id(layer)))]


class RewriteContext:
    """How a layer is connected inside the (sub)model being rewritten.

    `rewrite_model` passes one to the rule with each layer: the rule reads who
    produces the layer's inputs (`producers`), who consumes its outputs
    (`consumers`, `num_consumer_calls`), how often it is called (`num_calls`:
    more than 1 for a shared layer) and whether it produces a model output
    (`is_output`). Connections are those of the model given to the rule,
    counted over every call site of a shared layer; calls of the same layer in
    other models are ignored. `InputLayer`s appear as producers; plain
    `keras.ops` operations recorded in the graph (e.g. the `NotEqual`
    computing an `Embedding` mask) can appear as producers or consumers too.

    Args:
        model: The Sequential or Functional `keras.Model` whose connections
            are read (for a nested model, that submodel); kept as `model`.

    Raises:
        TypeError: If `model` is neither a Sequential model nor a model with
            a functional graph (a subclassed model, or not a model at all;
            `rewrite_model` refuses those with a `ValueError` before it builds
            a context).

    Example:

    ```python
    >>> import keras
    >>> from kerasx.transforms import RewriteContext
    >>> inputs = keras.Input((4,), name="features")
    >>> hidden = keras.layers.Dense(3, name="dense")(inputs)
    >>> model = keras.Model(inputs, keras.layers.ReLU(name="relu")(hidden))
    >>> context = RewriteContext(model)
    >>> dense = model.get_layer("dense")
    >>> [layer.name for layer in context.producers(dense)]
    ['features']
    >>> [layer.name for layer in context.consumers(dense)]
    ['relu']
    >>> context.num_calls(dense), context.is_output(dense)
    (1, False)
    >>> context.is_output(model.get_layer("relu"))
    True

    ```
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self._producers: dict[int, list[keras.layers.Layer]] = {}
        self._consumers: dict[int, list[keras.layers.Layer]] = {}
        self._num_calls: dict[int, int] = {}
        if isinstance(model, keras.Sequential):
            layers = _keras_internals.sequential_layers(model)
            for index, layer in enumerate(layers):
                self._num_calls[id(layer)] = 1
                if index > 0:
                    self._connect(layers[index - 1], layer)
            self._output_ids = {id(layers[-1])} if layers else set()
            return
        # Deepest first: topological order, inputs before their consumers.
        by_depth = _keras_internals.nodes_by_depth(model)
        nodes = [
            node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]
        ]
        node_ids = {id(node) for node in nodes}
        for node in nodes:
            layer = node.operation
            self._num_calls[id(layer)] = self._num_calls.get(id(layer), 0) + 1
            for parent in node.parent_nodes:
                if id(parent) in node_ids:
                    self._connect(parent.operation, layer)
        self._output_ids = {
            id(_keras_internals.producing_operation(tensor)) for tensor in model.outputs
        }

    def _connect(self, producer, consumer) -> None:
        self._producers.setdefault(id(consumer), []).append(producer)
        self._consumers.setdefault(id(producer), []).append(consumer)

    def producers(self, layer: keras.layers.Layer) -> list[keras.layers.Layer]:
        """Layers whose outputs feed `layer`, in call order, without repeats."""
        return _unique(self._producers.get(id(layer), []))

    def consumers(self, layer: keras.layers.Layer) -> list[keras.layers.Layer]:
        """Layers that consume an output of `layer`, without repeats."""
        return _unique(self._consumers.get(id(layer), []))

    def num_consumer_calls(self, layer: keras.layers.Layer) -> int:
        """How many calls (of any layer) consume an output of `layer`."""
        return len(self._consumers.get(id(layer), []))

    def num_calls(self, layer: keras.layers.Layer) -> int:
        """How many times `layer` is called in this model (> 1: shared)."""
        return self._num_calls.get(id(layer), 0)

    def is_output(self, layer: keras.layers.Layer) -> bool:
        """Whether an output of `layer` is an output of this model."""
        return id(layer) in self._output_ids


def rewrite_model(model: keras.Model, rule: Rule, *, name: str | None = None):
    """Returns a copy of `model` with each layer mapped through `rule`.

    `rule(layer, context)` is called once per layer (InputLayers, plain
    `keras.ops` operations and nested Sequential/Functional models excluded:
    operations are kept, submodels are rebuilt and the rule is applied to
    their layers, with a context for that submodel). It returns
    `None` to keep the very same layer object (weights shared), a new
    `keras.layers.Layer` to call instead on the same inputs with the same call
    arguments (`training`, `mask`, ...), or `SKIP` to drop the layer, whose
    output is then replaced by its single input tensor. A layer called at
    several sites gets the same replacement everywhere. The original model is
    never modified (kept layers merely gain a call site, as any shared layer
    does) and the result is not compiled.

    Args:
        model: A Sequential or Functional `keras.Model`.
        rule: Callable `(layer, RewriteContext) -> Layer | None | SKIP`.
        name: Name of the new model. Defaults to the name of `model`.

    Returns:
        A new model of the same kind (Sequential in, Sequential out).

    Raises:
        ValueError: If `model` is not a `keras.Model`, `rule` is not
            callable, or `name` is neither None nor a non-empty string; if
            `model`, or a model nested in it, is a subclassed Model without a
            functional graph; if the rule returns something other than None,
            a layer or `SKIP`; or if it returns `SKIP` for a layer that is not
            called on a single input tensor.

    Example:

    ```python
    >>> import keras
    >>> from kerasx.transforms import rewrite_model
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3), keras.layers.ReLU()]
    ... )
    >>> def gelu_for_relu(layer, context):
    ...     if isinstance(layer, keras.layers.ReLU):
    ...         return keras.layers.Activation("gelu", name="gelu")
    ...     return None
    >>> new = rewrite_model(model, gelu_for_relu, name="gelu_model")
    >>> new.name, [layer.name for layer in new.layers[1:]]
    ('gelu_model', ['gelu'])
    >>> new.layers[0] is model.layers[0]  # kept layers are shared
    True

    ```
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a "
            f"Sequential or Functional keras.Model. Received: model={model!r}"
        )
    if not callable(rule):
        raise ValueError(
            "Invalid value received for argument `rule`. Expected a callable "
            f"(layer, context) -> Layer | None | SKIP. Received: rule={rule!r}"
        )
    if name is not None and not (isinstance(name, str) and name):
        raise ValueError(
            "Invalid value received for argument `name`. Expected a non-empty "
            f"string or None. Received: name={name!r}"
        )
    return _rewrite(model, rule, cache={}, name=name)


def _rewrite(model: keras.Model, rule: Rule, cache: dict, name: str | None):
    if isinstance(model, keras.Sequential):
        return _rewrite_sequential(model, rule, cache, name)
    if _keras_internals.nodes_by_depth(model) is not None:
        return _rewrite_functional(model, rule, cache, name)
    raise ValueError(
        f"Model '{model.name}' of type {type(model).__name__} cannot be "
        "rewritten: it is a subclassed Model without a functional graph. Only "
        "Sequential and Functional models (possibly nested) can be rewritten."
    )


def _replacement(layer, context: RewriteContext, rule: Rule, cache: dict):
    """What `layer` becomes (a Layer or SKIP), computed once per layer."""
    if id(layer) in cache:
        return cache[id(layer)][1]
    if isinstance(layer, keras.Model):
        result = _rewrite(layer, rule, cache, name=None)
    else:
        result = rule(layer, context)
        if result is None:
            result = layer
        elif result is not SKIP and not isinstance(result, keras.layers.Layer):
            raise ValueError(
                f"Invalid value returned by `rule` for layer '{layer.name}'. "
                "Expected None, a keras.layers.Layer or SKIP. "
                f"Received: {result!r}"
            )
    # Keep `layer` referenced so its id cannot be reused while rewriting.
    cache[id(layer)] = (layer, result)
    return result


def _rewrite_sequential(model, rule, cache, name):
    context = RewriteContext(model)
    layers = []
    for layer in _keras_internals.sequential_layers(model):
        if isinstance(layer, keras.layers.InputLayer):
            layers.append(_new_input(layer.output))
            continue
        new_layer = _replacement(layer, context, rule, cache)
        if new_layer is not SKIP:
            layers.append(new_layer)
    return keras.Sequential(layers, name=name or model.name, trainable=model.trainable)


def _rewrite_functional(model, rule, cache, name):
    context = RewriteContext(model)
    operations = {}
    for operation in model.operations:
        # Plain operations (e.g. the `not_equal` of an Embedding mask, or
        # `keras.ops` applied to symbolic tensors) are not layers: kept as-is.
        if isinstance(operation, keras.layers.InputLayer) or not isinstance(
            operation, keras.layers.Layer
        ):
            operations[id(operation)] = operation
            continue
        new_layer = _replacement(operation, context, rule, cache)
        if new_layer is SKIP:
            new_layer = _passthrough(operation)
        elif new_layer is not operation:
            new_layer = _call_replacement(new_layer)
        operations[id(operation)] = new_layer
    inputs = keras.tree.map_structure(_new_input, model.input)
    outputs = _keras_internals.run_through_graph(
        model, inputs, lambda layer: operations[id(layer)]
    )
    return keras.Model(
        inputs, outputs, name=name or model.name, trainable=model.trainable
    )


def _new_input(tensor):
    return keras.Input(
        batch_shape=tensor.shape,
        dtype=tensor.dtype,
        sparse=tensor.sparse,
        name=tensor.name,
    )


def _call_replacement(layer: keras.layers.Layer) -> Callable:
    """Calls `layer` with the original call's arguments it can accept.

    Keras records the `training` and `mask` values it filled in for the
    original layer; a replacement whose `call` takes neither does not need
    them (masks still travel on the tensors), so they are dropped for it.
    """
    parameters = inspect.signature(layer.call).parameters.values()
    names = {parameter.name for parameter in parameters}
    takes_any = any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)
    dropped = set() if takes_any else {"training", "mask"} - names

    def call(*args, **kwargs):
        return layer(*args, **{k: v for k, v in kwargs.items() if k not in dropped})

    return call


def _passthrough(layer: keras.layers.Layer) -> Callable:
    """A stand-in for a skipped layer: returns its single input tensor."""

    def call(*args, **kwargs):
        # Keyword tensors (an explicit `mask=`) are dropped with the layer.
        tensors = keras.tree.flatten(args)
        if len(args) != 1 or len(tensors) != 1:
            raise ValueError(
                f"Layer '{layer.name}' cannot be skipped: SKIP needs a layer "
                f"called on a single input tensor. Received: {len(tensors)} "
                "tensors."
            )
        return args[0]

    return call
