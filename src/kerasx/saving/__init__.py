"""One `save`/`load` pair for every Keras 3 model format, chosen by suffix.

| suffix | content | Keras API underneath |
|---|---|---|
| `.keras` | architecture, weights, optimizer state | `keras.saving.save_model` |
| `.h5`, `.hdf5` | the same, legacy HDF5 | `keras.saving.save_model` |
| `.json` | architecture; weights in `<stem>.weights.h5` | `to_json` + `save_weights` |
| `.weights.h5` | weights only | `Model.save_weights` |

Writes are atomic (temp file in the same directory, then `os.replace`), every
kerasx layer and schedule loads without `custom_objects`, and `load` turns
Keras' low-level failures into errors that name the file and the problem.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras

from kerasx import _checks
from kerasx.saving import _io

__all__ = ["from_json", "load", "save", "to_json"]


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


def save(
    model: keras.Model, path: str | os.PathLike, *, overwrite: bool = True
) -> None:
    """Saves `model` in the format given by the suffix of `path`, atomically.

    Every file is first written to a hidden temp file next to its target,
    flushed to disk, then renamed over the target with `os.replace`. If
    anything fails (or is interrupted) before the rename, existing files are
    left exactly as they were and no temp file remains. For `.json` both the
    architecture and the `<stem>.weights.h5` file are written completely
    before either is renamed; the weights file is renamed first.

    Args:
        model: The `keras.Model` to save (built, for the weight formats).
        path: Target file: `*.keras`, `*.h5`/`*.hdf5` (legacy), `*.json`
            (architecture, with weights in `<stem>.weights.h5` beside it) or
            `*.weights.h5` (weights only). Its directory must exist.
        overwrite: If `False`, raise `FileExistsError` instead of replacing
            an existing file (Keras would prompt interactively).

    Example:

    ```python
    >>> import os, tempfile
    >>> import kerasx
    >>> model = kerasx.models.build_mlp((4,), 3, hidden_units=(8,))
    >>> directory = tempfile.mkdtemp()
    >>> save(model, os.path.join(directory, "model.json"))
    >>> sorted(os.listdir(directory))
    ['model.json', 'model.weights.h5']

    ```

    Reference:
        Keras saving guide, https://keras.io/guides/serialization_and_saving/
    """
    _checks.model(model)
    path, fmt, suffix = format_of(path)
    _checks.boolean("overwrite", overwrite)
    targets = [(path, suffix)]
    if fmt == "json":
        targets.insert(0, (weights_path_of(path), ".weights.h5"))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save to '{path}': no directory '{directory}'.")
    existing = [target for target, _ in targets if os.path.exists(target)]
    if existing and not overwrite:
        raise FileExistsError(
            f"Not saving: {existing} already exist(s) and overwrite=False."
        )
    with _io.atomic_targets(targets) as temps:
        if fmt == "json":
            model.save_weights(temps[0])
            with open(temps[1], "w", encoding="utf-8") as handle:
                handle.write(model.to_json(indent=2))
        elif fmt == "weights":
            model.save_weights(temps[0])
        else:
            with _io.preserving_compile_config(model):
                keras.saving.save_model(model, temps[0])


def load(
    path: str | os.PathLike,
    *,
    model: keras.Model | None = None,
    custom_objects: dict[str, Any] | None = None,
    safe_mode: bool = True,
    compile: bool = True,
) -> keras.Model:
    """Loads a model (or, for `.weights.h5`, weights) saved by `save`.

    kerasx layers and schedules are registered first, so they need no
    `custom_objects`. Errors name the file: `FileNotFoundError` for a missing
    file (or a `.json` without its `<stem>.weights.h5`), `ValueError` for a
    truncated or corrupt file and for weights that do not match the model (the
    message names the first mismatching layer and both shapes; the model's
    weights are then left unchanged).

    Args:
        path: A file written by `save` (or by Keras' own `save`/`save_weights`).
        model: For `.weights.h5` only, and required there: the model to load
            the weights into, in place. It is also returned.
        custom_objects: Extra classes/functions by name, for your own layers.
        safe_mode: Refuse to deserialize `lambda`s (arbitrary code). Keep the
            default `True` for files you did not write yourself.
        compile: Compile the model with the saved optimizer, loss and metrics
            (`.keras`: optimizer state included, so training resumes exactly;
            `.h5`). `.json` and `.weights.h5` hold no training configuration.

    Returns:
        The loaded `keras.Model`.

    Example:

    ```python
    >>> import os, tempfile
    >>> import kerasx
    >>> model = kerasx.models.build_mlp((4,), 3, hidden_units=(8,))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> save(model, path)
    >>> load(path).count_params() == model.count_params()
    True

    ```

    Reference:
        Keras saving guide, https://keras.io/guides/serialization_and_saving/
    """
    path, fmt, _ = format_of(path)
    if fmt == "weights":
        if model is None:
            raise ValueError(
                "Invalid value received for argument `model`. Expected the "
                f"keras.Model to load the weights of '{path}' into. Received: "
                "model=None"
            )
        _checks.model(model)
    elif model is not None:
        raise ValueError(
            "Invalid value received for argument `model`. Expected None: "
            f"'{path}' holds a whole model. Received: model={model!r}"
        )
    _checks.optional_mapping("custom_objects", custom_objects)
    _checks.boolean("safe_mode", safe_mode)
    _checks.boolean("compile", compile)
    required = [path] + ([weights_path_of(path)] if fmt == "json" else [])
    for file in required:
        if not os.path.isfile(file):
            raise FileNotFoundError(f"Cannot load '{path}': no such file '{file}'.")

    if fmt == "weights":
        _io.load_weights_checked(model, path)
        return model
    if fmt == "json":
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        loaded = from_json(text, custom_objects=custom_objects, safe_mode=safe_mode)
        _io.load_weights_checked(loaded, weights_path_of(path))
        return loaded
    return _io.load_whole_model(path, fmt, custom_objects, safe_mode, compile)


def to_json(model: keras.Model, **kwargs: Any) -> str:
    """Returns the architecture of `model` as a JSON string.

    Args:
        model: A `keras.Model`.
        **kwargs: Passed to `json.dumps` (e.g. `indent=2`).

    Returns:
        The JSON text `from_json` reads back (no weights, no optimizer).

    Example:

    ```python
    >>> import kerasx
    >>> text = to_json(kerasx.models.build_mlp((4,), 3, hidden_units=(8,)))
    >>> from_json(text).count_params()
    67

    ```

    Reference:
        `keras.Model.to_json`.
    """
    _checks.model(model)
    return model.to_json(**kwargs)


def from_json(
    text: str, custom_objects: dict[str, Any] | None = None, *, safe_mode: bool = True
) -> keras.Model:
    """Rebuilds an (uncompiled, freshly initialised) model from `to_json` text.

    The model is always returned uncompiled: Keras' JSON records the loss but
    not the optimizer, and `keras.models.model_from_json` would silently
    compile with a default `RMSprop`. Compile it yourself.

    Args:
        text: JSON produced by `to_json` or `keras.Model.to_json`.
        custom_objects: Extra classes/functions by name; kerasx objects are
            always resolvable.
        safe_mode: Refuse to deserialize `lambda`s (arbitrary code).

    Returns:
        The new `keras.Model`.

    Example:

    ```python
    >>> import kerasx
    >>> model = kerasx.models.build_mlp((4,), 3, hidden_units=(8,))
    >>> [layer.name for layer in from_json(to_json(model)).layers]
    ['input', 'block1_dense', 'output']

    ```

    Reference:
        `keras.models.model_from_json`.
    """
    if not isinstance(text, str):
        raise ValueError(
            "Invalid value received for argument `text`. Expected a JSON "
            f"string. Received: text={text!r:.80}"
        )
    _checks.optional_mapping("custom_objects", custom_objects)
    _checks.boolean("safe_mode", safe_mode)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Cannot parse the model JSON: {error}.") from error
    if isinstance(config, dict):
        config.pop("compile_config", None)
    model = keras.saving.deserialize_keras_object(
        config, custom_objects=custom_objects, safe_mode=safe_mode
    )
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"The JSON describes a {type(model).__name__}, not a keras.Model."
        )
    return model
