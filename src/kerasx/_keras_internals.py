"""Every use of Keras internals in kerasx, in one place.

kerasx prefers the public Keras API. Where no public API gives what a feature
needs, the private attribute or `keras.src` import is wrapped here, so that a
Keras upgrade that moves one of them breaks one module, and the tests of this
module's callers name it. Used internals (Keras 3.14-3.15):

- `Layer._flatten_layers(include_self=False)` (`uncertainty`): every nested
  layer, also inside custom layers (`Model.layers` is one level deep).
- `Sequential._layers` (`transforms`): the layers with the `InputLayer`, whose
  batch shape and dtype the rewrite copies.
- `Functional._nodes_by_depth` (`transforms`): the call graph, i.e. the
  producers and consumers of each layer call.
- `KerasTensor._keras_history` (`transforms`): which operation produced a model
  output.
- `Functional._run_through_graph` (`transforms`): replays the graph with
  replaced operations and the original call arguments.
- `keras.src.backend.common.global_state` (`lr_finder`): Keras' global
  `SeedGenerator` of unseeded random ops, restored after the sweep.
- `Optimizer._learning_rate` (`callbacks`): the schedule or callable the user
  compiled with, for error messages.
- `Optimizer._iterations` (`callbacks`): the raw step counter under gradient
  accumulation (`iterations` counts applied updates).
- `Model._compile_config` (`saving`): undoing the legacy HDF5 writer's in-place
  edit of it.
- `keras.src.utils.naming.to_snake_case` (`saving`): the names Keras gives the
  layer groups of `.weights.h5` files.
- `keras.src.trainers.data_adapters` (`uncertainty`): the batches `Model.predict`
  reads from arrays, `PyDataset`, `tf.data`, torch `DataLoader` and generators.

`keras.models.clone_model(..., call_function=..., recursive=True)` was tried as
the base of the graph rewrite; it cannot serve: Keras refuses `call_function`
for Sequential models (which a rule that drops a layer needs), and the rules
need each layer's producers and consumers, which `clone_model` does not expose.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import keras


def nested_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every layer nested in `layer` (any depth), `layer` itself excluded."""
    return list(layer._flatten_layers(include_self=False))


def sequential_layers(model: keras.Sequential) -> list[keras.layers.Layer]:
    """The layers of a Sequential model, its `InputLayer` included."""
    return list(model._layers)


def nodes_by_depth(model: keras.Model) -> dict[int, list] | None:
    """`{depth: [Node, ...]}` of a Functional model; None for other models."""
    return getattr(model, "_nodes_by_depth", None)


def producing_operation(tensor: Any) -> Any:
    """The operation (layer) whose call produced the symbolic `tensor`."""
    return tensor._keras_history.operation


def run_through_graph(model: keras.Model, inputs: Any, operation_fn: Callable) -> Any:
    """Replays `model`'s graph on `inputs`, calling `operation_fn(op)` for each op."""
    return model._run_through_graph(inputs, operation_fn=operation_fn)


def global_seed_generator() -> keras.random.SeedGenerator | None:
    """Keras' global generator of unseeded random ops (None until first used)."""
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("global_seed_generator")


def compiled_learning_rate(optimizer: keras.optimizers.Optimizer) -> Any:
    """The learning rate as given to the optimizer (a float, schedule or callable)."""
    return optimizer._learning_rate


def raw_iterations(optimizer: keras.optimizers.Optimizer) -> keras.Variable:
    """Steps seen, counting every accumulation step (`iterations` counts updates)."""
    return optimizer._iterations


def compile_config_dict(model: keras.Model) -> dict | None:
    """The dict behind `model.get_compile_config()`, or None if not compiled."""
    config = getattr(getattr(model, "_compile_config", None), "config", None)
    return config if isinstance(config, dict) else None


def to_snake_case(name: str) -> str:
    """Keras' own snake-casing, which names the layer groups of weights files."""
    from keras.src.utils.naming import to_snake_case as keras_to_snake_case

    return keras_to_snake_case(name)


def is_array_input(x: Any) -> bool:
    """Whether `Model.predict` slices `x` as arrays (not a dataset or generator)."""
    from keras.src.trainers.data_adapters import array_data_adapter

    return array_data_adapter.can_convert_arrays((x,))


def predict_batches(
    x: Any, batch_size: int | None = None, steps: int | None = None
) -> Iterator[Any]:
    """The input batches `Model.predict(x, batch_size=..., steps=...)` reads, as NumPy.

    Targets and sample weights a dataset may yield are dropped, as `predict`
    drops them; `steps` stops after that many batches (needed for generators
    that never end).
    """
    from keras.src.trainers.data_adapters import data_adapter_utils, get_data_adapter

    adapter = get_data_adapter(
        x, batch_size=batch_size, steps_per_epoch=steps, shuffle=False
    )
    adapter.on_epoch_begin()
    try:
        batches = adapter.get_numpy_iterator()
        if steps is not None:
            batches = itertools.islice(batches, steps)
        for data in batches:
            yield data_adapter_utils.unpack_x_y_sample_weight(data)[0]
    finally:
        adapter.on_epoch_end()
