"""Every private name kerasx uses from Keras, TensorFlow, JAX and torch.

kerasx prefers the public APIs. Where no public API gives what a feature
needs, the private Keras attribute or `keras.src` import is wrapped here, so
that a Keras upgrade that moves one of them breaks one module, and the tests
of this module's callers name it. The backend kernels in `kerasx.ops` keep
their few backend internals in place (no TensorFlow, JAX or torch import
outside `kerasx.ops`), but they are listed here too: `PRIVATE_USES` is the
complete list, with the kerasx modules that use each name and why, and
`tests/test_keras_internals.py` checks that every listed name exists in the
installed libraries. The list is what the `keras` pin in `pyproject.toml` was
tested against (Keras 3.14-3.15).

`keras.models.clone_model(..., call_function=..., recursive=True)` was tried as
the base of the graph rewrite; it cannot serve: Keras refuses `call_function`
for Sequential models (which a rule that drops a layer needs), and the rules
need each layer's producers and consumers, which `clone_model` does not expose.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import keras


@dataclasses.dataclass(frozen=True)
class PrivateUse:
    """One private (or undocumented) name kerasx relies on.

    Attributes:
        path: Dotted path of the name, importable up to the last module
            (`"keras.src.utils.naming.to_snake_case"`), then attributes.
        users: The kerasx modules that use it.
        why: What it gives that no public API gives.
        on_instance: The attribute is set on instances (in `__init__`,
            `build` or `compile`), not defined on the class.
    """

    path: str
    users: str
    why: str
    on_instance: bool = False

    @property
    def library(self) -> str:
        """The distribution that provides the name: keras, tensorflow, jax or torch."""
        return self.path.split(".", 1)[0]


#: Keras writes this `module` in the configs of functional models; no public
#: alias of `Functional` exists to name it by.
FUNCTIONAL_MODULE = "keras.src.models.functional"

PRIVATE_USES: tuple[PrivateUse, ...] = (
    PrivateUse(
        "keras.layers.Layer._flatten_layers",
        "uncertainty, transfer",
        "every nested layer, also inside custom layers (`Model.layers` is one "
        "level deep)",
    ),
    PrivateUse(
        "keras.Sequential._layers",
        "transforms",
        "the layers with the `InputLayer`, whose batch shape and dtype the "
        "rewrite copies",
        on_instance=True,
    ),
    PrivateUse(
        f"{FUNCTIONAL_MODULE}.Functional._nodes_by_depth",
        "transforms",
        "the call graph: the producers and consumers of each layer call",
        on_instance=True,
    ),
    PrivateUse(
        f"{FUNCTIONAL_MODULE}.Functional._run_through_graph",
        "transforms",
        "replays the graph with replaced operations and the original call arguments",
    ),
    PrivateUse(
        "keras.KerasTensor._keras_history",
        "transforms",
        "which operation produced a model output",
        on_instance=True,
    ),
    PrivateUse(
        "keras.layers.Layer.get_build_config",
        "transforms",
        'its private `"input_shape"` key: the rank of the input a '
        "BatchNormalization was built for (public method, undocumented format)",
    ),
    PrivateUse(
        "keras.layers.SpatialDropout1D._get_noise_shape",
        "layers.mc_dropout",
        "the per-channel noise shape of SpatialDropout1D/2D/3D, which the MC "
        "twins draw row by row",
    ),
    PrivateUse(
        "keras.layers.SpatialDropout2D._get_noise_shape",
        "layers.mc_dropout",
        "as for SpatialDropout1D",
    ),
    PrivateUse(
        "keras.layers.SpatialDropout3D._get_noise_shape",
        "layers.mc_dropout",
        "as for SpatialDropout1D",
    ),
    PrivateUse(
        f"{FUNCTIONAL_MODULE}.Functional",
        "saving",
        "the `module` Keras writes for functional models, filled into "
        "hand-written configs that lack it",
    ),
    PrivateUse(
        "keras.src.backend.common.global_state.get_global_attribute",
        "lr_finder, callbacks",
        "Keras' global `SeedGenerator` of unseeded random ops (key "
        '`"global_seed_generator"`), restored after the sweep and after each '
        "GradientStats / ActivationStats probe",
    ),
    PrivateUse(
        "keras.optimizers.Optimizer._learning_rate",
        "callbacks",
        "the schedule or callable the user compiled with, for error messages",
        on_instance=True,
    ),
    PrivateUse(
        "keras.optimizers.Optimizer._iterations",
        "callbacks",
        "the raw step counter under gradient accumulation (`iterations` counts "
        "applied updates)",
        on_instance=True,
    ),
    PrivateUse(
        "keras.Model.make_train_function",
        "callbacks",
        "undocumented (not underscored): wrapped on the instance to remove the "
        "step hook of an interrupted `fit` before the next train function is built",
    ),
    PrivateUse(
        "keras.Model._compile_config",
        "saving, transfer",
        "undoing the legacy HDF5 writer's in-place edit of it; the live compile "
        "arguments (loss and metric objects) that `fine_tune` compiles with again",
        on_instance=True,
    ),
    PrivateUse(
        "keras.src.utils.naming.to_snake_case",
        "saving",
        "the names Keras gives the layer groups of `.weights.h5` files",
    ),
    PrivateUse(
        "keras.src.trainers.data_adapters.array_data_adapter.can_convert_arrays",
        "uncertainty",
        "whether `Model.predict` slices its input as arrays",
    ),
    PrivateUse(
        "keras.src.trainers.data_adapters.get_data_adapter",
        "uncertainty",
        "the batches `Model.predict` reads from arrays, `PyDataset`, `tf.data`, "
        "torch `DataLoader` and generators",
    ),
    PrivateUse(
        "keras.src.trainers.data_adapters.data_adapter_utils.unpack_x_y_sample_weight",
        "uncertainty",
        "drops the targets and sample weights a dataset yields, as `predict` does",
    ),
    PrivateUse(
        "tensorflow.python.ops.control_flow_util.GraphOrParentsInXlaContext",
        "ops._tensorflow",
        "whether ops built now are compiled by XLA (`jit_compile=True`), which "
        "picks the kernel; no public TensorFlow API tells",
    ),
    PrivateUse(
        "jax.core.Tracer",
        "ops._jax",
        "whether the kernel is being traced under `jax.jit` (`jax.core` is being "
        "pruned; no `jax.Tracer` alias exists)",
    ),
    PrivateUse(
        "torch.ops.aten.native_batch_norm_backward",
        "ops._torch",
        "ATen's fused batch-norm backward, called with positional arguments in "
        "the order of `ATEN_BATCH_NORM_BACKWARD_ARGUMENTS`",
    ),
)

#: The argument names of `aten::native_batch_norm_backward`, in the order
#: `ops._torch` passes them positionally.
ATEN_BATCH_NORM_BACKWARD_ARGUMENTS = (
    "grad_out",
    "input",
    "weight",
    "running_mean",
    "running_var",
    "save_mean",
    "save_invstd",
    "train",
    "eps",
    "output_mask",
)


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


def built_input_shape(layer: keras.layers.Layer) -> tuple | None:
    """The input shape `layer` was built for (from its build config), or None."""
    shape = (layer.get_build_config() or {}).get("input_shape")
    return None if shape is None else tuple(shape)


def spatial_noise_shape(layer: keras.layers.Layer, inputs: Any) -> tuple | None:
    """A SpatialDropout layer's noise shape for `inputs`; None for other layers."""
    get_noise_shape = getattr(layer, "_get_noise_shape", None)
    return None if get_noise_shape is None else tuple(get_noise_shape(inputs))


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
