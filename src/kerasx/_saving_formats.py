"""Private helpers of `kerasx.saving`: the format table and argument checks."""

from __future__ import annotations

import importlib
import os
from typing import Any

import keras

# Every kerasx module defining `register_keras_serializable` objects. Imported
# by `load`/`from_json` so configs resolve without `custom_objects`; importing
# them lazily keeps `import kerasx.saving` free of backend kernels.
SERIALIZABLE_MODULES = (
    "kerasx.layers.mc_dropout",
    "kerasx.layers.batch_norm_activation",
    "kerasx.schedules",
)


def register_kerasx_objects() -> None:
    """Imports every kerasx module that registers serializable objects."""
    for module in SERIALIZABLE_MODULES:
        importlib.import_module(module)


# `.weights.h5` must be tested before `.h5`, which it also ends with.
_FORMATS = (
    (".weights.h5", "weights"),
    (".keras", "keras"),
    (".h5", "h5"),
    (".hdf5", "h5"),
    (".json", "json"),
)


def format_of(path: Any) -> tuple[str, str, str]:
    """Returns `(path, format, suffix)`; raises on an unsupported suffix."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            "Invalid value received for argument `path`. Expected a str or "
            f"os.PathLike. Received: path={path!r}"
        )
    path = os.fspath(path)
    for suffix, fmt in _FORMATS:
        if path.endswith(suffix):
            return path, fmt, suffix
    supported = ", ".join(f"'{suffix}'" for suffix, _ in _FORMATS)
    raise ValueError(
        "Invalid value received for argument `path`. Expected a file name "
        f"ending in one of {supported}. Received: path={path!r}"
    )


def weights_path_of(json_path: str) -> str:
    return json_path[: -len(".json")] + ".weights.h5"


def check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a "
            f"keras.Model. Received: model={model!r}"
        )


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a bool. "
            f"Received: {name}={value!r}"
        )


def check_custom_objects(custom_objects: Any) -> None:
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise ValueError(
            "Invalid value received for argument `custom_objects`. Expected "
            f"None or a dict. Received: custom_objects={custom_objects!r}"
        )
