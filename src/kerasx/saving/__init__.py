"""One `save`/`load` pair for every Keras 3 model format, chosen by suffix.

| suffix | content | Keras API underneath |
|---|---|---|
| `.keras` | architecture, weights, optimizer state | `keras.saving.save_model` |
| `.h5`, `.hdf5` | the same, legacy HDF5 | `keras.saving.save_model` |
| `.json` | architecture; weights in `<stem>.weights.h5` | `to_json` + `save_weights` |
| `.yaml`, `.yml` | as `.json`, in YAML (PyYAML) | `yaml.safe_dump` + `safe_load` |
| `.weights.h5` | weights only | `Model.save_weights` |

Writes are atomic (temp file in the same directory, then `os.replace`; temp
files of writers killed mid-save are removed by the next save of the same
file) and go through symbolic links, as Keras' own `Model.save` does (the
link's target is replaced, the link is kept); every kerasx layer and
schedule loads without `custom_objects` (they are registered by `import
kerasx`), and `load` turns Keras' low-level failures into errors that name
the file and the problem.
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
    (".yaml", "yaml"),
    (".yml", "yaml"),
)
_ARCHITECTURE_FORMATS = ("json", "yaml")


def format_of(path: Any) -> tuple[str, str, str]:
    """Returns `(path, format, suffix)`; raises on an unsupported suffix."""
    if not isinstance(path, (str, os.PathLike)):
        raise _checks.invalid("path", "a str or os.PathLike", path)
    path = os.fspath(path)
    for suffix, fmt in _FORMATS:
        if path.endswith(suffix):
            return path, fmt, suffix
    supported = ", ".join(f"'{suffix}'" for suffix, _ in _FORMATS)
    raise _checks.invalid("path", f"a file name ending in one of {supported}", path)


def weights_path_of(architecture_path: str) -> str:
    """`<stem>.weights.h5` beside a `.json` / `.yaml` / `.yml` file."""
    stem, _ = os.path.splitext(architecture_path)
    return stem + ".weights.h5"


def _yaml():
    try:
        import yaml
    except ImportError:
        raise ImportError(
            "Saving or loading a '.yaml' model needs PyYAML, which is not "
            "installed. Install it with `pip install 'kerasx[yaml]'` (or "
            "`pip install pyyaml`), or use the '.json' format."
        ) from None
    return yaml


def _architecture_text(model: keras.Model, fmt: str) -> str:
    if fmt == "json":
        return model.to_json(indent=2)
    config = json.loads(model.to_json())  # Plain lists, dicts and scalars only.
    return _yaml().safe_dump(config, sort_keys=False)


def save(
    model: keras.Model, path: str | os.PathLike, *, overwrite: bool = True
) -> None:
    """Saves `model` in the format given by the suffix of `path`, atomically.

    Every file is first written to a hidden temp file next to its target,
    flushed to disk, then renamed over the target with `os.replace`. If
    anything fails before the rename, existing files are left exactly as they
    were and no temp file remains; if the process is killed, the next save of
    the same file removes the temp file it left. For `.json` and `.yaml` both
    the architecture and the `<stem>.weights.h5` file are written completely
    before either is renamed; the weights file is renamed first. A target
    that is a symbolic link is written through: the file it points to is
    replaced (its temp file lives in that file's directory) and the link is
    kept, as with Keras' `Model.save`.

    Args:
        model: The `keras.Model` to save (built, for the weight formats).
        path: Target file: `*.keras`, `*.h5`/`*.hdf5` (legacy), `*.json` or
            `*.yaml`/`*.yml` (architecture, with weights in
            `<stem>.weights.h5` beside it; YAML needs the `kerasx[yaml]`
            extra) or `*.weights.h5` (weights only). Its directory must exist.
        overwrite: If `False`, raise `FileExistsError` instead of replacing
            an existing file (Keras would prompt interactively).

    Raises:
        ValueError: If `model` is not a `keras.Model`, `path` is not a str or
            `os.PathLike` ending in a supported suffix, or `overwrite` is not
            a bool.
        FileNotFoundError: If the directory of `path` does not exist.
        IsADirectoryError: If `path` (or its `<stem>.weights.h5`) is a
            directory.
        FileExistsError: If `overwrite=False` and a target file exists.
        ImportError: For `.yaml` / `.yml` without PyYAML installed.

    Example:

    ```python
    >>> import os
    >>> import tempfile
    >>> import keras
    >>> from kerasx.layers import MCDropout
    >>> from kerasx.saving import save
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     MCDropout(0.5), keras.layers.Dense(3)])
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     save(model, os.path.join(directory, "model.keras"))  # the whole model
    ...     save(model, os.path.join(directory, "model.json"))  # and its weights
    ...     print(sorted(os.listdir(directory)))
    ...     try:
    ...         save(model, os.path.join(directory, "model.keras"), overwrite=False)
    ...     except FileExistsError:
    ...         print("kept the existing file")
    ['model.json', 'model.keras', 'model.weights.h5']
    kept the existing file

    ```

    Reference:
        Keras saving guide, https://keras.io/guides/serialization_and_saving/
    """
    _checks.model(model)
    path, fmt, suffix = format_of(path)
    _checks.boolean("overwrite", overwrite)
    targets = [(path, suffix)]
    text = None
    if fmt in _ARCHITECTURE_FORMATS:
        text = _architecture_text(model, fmt)  # Fails before any file is written.
        targets.insert(0, (weights_path_of(path), ".weights.h5"))
    # Through symbolic links: replacing a link would leave its target stale.
    targets = [(os.path.realpath(target), ending) for target, ending in targets]
    for target, _ in targets:
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise FileNotFoundError(
                f"Cannot save to '{path}': no directory '{directory}'."
            )
        if os.path.isdir(target):
            raise IsADirectoryError(
                f"Cannot save to '{path}': '{target}' is a directory."
            )
    existing = [target for target, _ in targets if os.path.exists(target)]
    if existing and not overwrite:
        raise FileExistsError(
            f"Not saving: {existing} already exist(s) and overwrite=False."
        )
    with _io.atomic_targets(targets) as temps:
        if text is not None:
            model.save_weights(temps[0])
            with open(temps[1], "w", encoding="utf-8") as handle:
                handle.write(text)
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

    kerasx layers and schedules are registered by `import kerasx`, so they
    need no `custom_objects`. Errors name the file: `FileNotFoundError` for a
    missing file (or a `.json` / `.yaml` without its `<stem>.weights.h5`),
    `ValueError` for a truncated or corrupt file (a `.keras` archive without
    a readable `config.json` included) and for weights that do not match the
    model (the message names the first mismatching layer and both shapes; the
    model's weights are then left unchanged). YAML is read with
    `yaml.safe_load`, which builds only plain data, never Python objects.

    Args:
        path: A file written by `save` (or by Keras' own `save`/`save_weights`).
        model: For `.weights.h5` only, and required there: the model to load
            the weights into, in place. It is also returned.
        custom_objects: Extra classes/functions by name, for your own layers.
        safe_mode: Refuse to deserialize `lambda`s (arbitrary code). Keep the
            default `True` for files you did not write yourself.
        compile: Compile the model with the saved optimizer, loss and metrics
            (`.keras`: optimizer state included, so training resumes exactly;
            `.h5`). `.json`, `.yaml` and `.weights.h5` hold no training
            configuration.

    Returns:
        The loaded `keras.Model` (for `.weights.h5`, `model` itself).

    Raises:
        ValueError: If `path` is not a str or `os.PathLike` ending in a
            supported suffix; if `model` is missing (or not a `keras.Model`)
            for `.weights.h5`, or given for another format; if
            `custom_objects` is not None or a dict, or `safe_mode` or
            `compile` not a bool; if the file is truncated or corrupt, holds
            no Keras model, or holds weights that do not match the model (the
            message names the file and the first mismatching layer); if
            `safe_mode=True` refuses a `lambda`.
        TypeError: If Keras cannot locate or rebuild a class of the file
            (e.g. a custom layer neither registered nor in
            `custom_objects`); the message names the file.
        FileNotFoundError: If `path`, or the `<stem>.weights.h5` of a `.json`
            / `.yaml` file, does not exist.
        IsADirectoryError: If one of these files is a directory.
        ImportError: For `.yaml` / `.yml` without PyYAML installed.

    Example:

    ```python
    >>> import os
    >>> import tempfile
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCDropout
    >>> from kerasx.saving import load, save
    >>> def build():
    ...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...         MCDropout(0.5), keras.layers.Dense(3)])
    >>> model = build()
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     save(model, os.path.join(directory, "model.keras"))
    ...     restored = load(os.path.join(directory, "model.keras"))
    ...     save(model, os.path.join(directory, "model.weights.h5"))
    ...     fresh = load(os.path.join(directory, "model.weights.h5"), model=build())
    >>> [type(layer).__name__ for layer in restored.layers]  # no custom_objects
    ['Dense', 'MCDropout', 'Dense']
    >>> weights = [model.get_weights(), restored.get_weights(), fresh.get_weights()]
    >>> all(np.array_equal(a, b) for a, b, _ in zip(*weights))
    True
    >>> all(np.array_equal(a, c) for a, _, c in zip(*weights))
    True

    ```

    Reference:
        Keras saving guide, https://keras.io/guides/serialization_and_saving/
    """
    path, fmt, _ = format_of(path)
    if fmt == "weights":
        expected = f"the keras.Model to load the weights of '{path}' into"
        _checks.model(model, expected=expected)
    elif model is not None:
        raise _checks.invalid("model", f"None: '{path}' holds a whole model", model)
    _checks.optional_mapping("custom_objects", custom_objects)
    _checks.boolean("safe_mode", safe_mode)
    _checks.boolean("compile", compile)
    architecture = fmt in _ARCHITECTURE_FORMATS
    required = [path] + ([weights_path_of(path)] if architecture else [])
    for file in required:
        if os.path.isdir(file):
            raise IsADirectoryError(f"Cannot load '{path}': '{file}' is a directory.")
        if not os.path.isfile(file):
            raise FileNotFoundError(f"Cannot load '{path}': no such file '{file}'.")

    if fmt == "weights":
        _io.load_weights_checked(model, path)
        return model
    if architecture:
        config = _read_json(path) if fmt == "json" else _read_yaml(path)
        with _io.naming_file(path):
            loaded = _from_config(config, custom_objects, safe_mode, f"'{path}'")
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

    Raises:
        ValueError: If `model` is not a `keras.Model`.
        TypeError: If `kwargs` holds an argument `json.dumps` does not take.

    Example:

    ```python
    >>> import json
    >>> import keras
    >>> from kerasx.layers import MCDropout
    >>> from kerasx.saving import from_json, to_json
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     MCDropout(0.5), keras.layers.Dense(3)])
    >>> text = to_json(model, indent=2)
    >>> json.loads(text)["class_name"]
    'Sequential'
    >>> [type(layer).__name__ for layer in from_json(text).layers]
    ['Dense', 'MCDropout', 'Dense']

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

    Keras' built-in classes are found also when the JSON omits their
    `module` (JSON written by hand or by Keras 2's `to_json`).

    Args:
        text: JSON produced by `to_json` or `keras.Model.to_json`.
        custom_objects: Extra classes/functions by name; kerasx objects are
            always resolvable.
        safe_mode: Refuse to deserialize `lambda`s (arbitrary code).

    Returns:
        The new `keras.Model`.

    Raises:
        ValueError: If `text` is not a str or not valid JSON, or describes no
            Keras object or an object that is not a `keras.Model`; if
            `custom_objects` is not None or a dict, or `safe_mode` not a bool;
            if `safe_mode=True` refuses a `lambda`.
        TypeError: If Keras cannot locate or rebuild a class of the JSON
            (e.g. a custom layer neither registered nor in `custom_objects`).

    Example:

    ```python
    >>> import keras
    >>> from kerasx.layers import MCDropout
    >>> from kerasx.saving import from_json, to_json
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...     MCDropout(0.5), keras.layers.Dense(3)])
    >>> rebuilt = from_json(to_json(model))  # new weights, not compiled
    >>> [type(layer).__name__ for layer in rebuilt.layers], rebuilt.compiled
    (['Dense', 'MCDropout', 'Dense'], False)
    >>> text = '''{"class_name": "Sequential", "config": {"name": "s", "layers": [
    ...     {"class_name": "InputLayer", "config": {"batch_shape": [null, 4]}},
    ...     {"class_name": "Dense", "config": {"units": 3}}]}}'''
    >>> from_json(text).count_params()  # 4 * 3 weights + 3 biases
    15

    ```

    Reference:
        `keras.models.model_from_json`.
    """
    if not isinstance(text, str):
        raise _checks.invalid("text", "a JSON string", text)
    _checks.optional_mapping("custom_objects", custom_objects)
    _checks.boolean("safe_mode", safe_mode)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Cannot parse the model JSON: {error}.") from error
    return _from_config(config, custom_objects, safe_mode, source="The JSON")


def _read_text(path: str, kind: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise _io.corrupt_file_error(path, kind, error) from error


def _read_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path, "JSON model"))
    except json.JSONDecodeError as error:
        raise _io.corrupt_file_error(path, "JSON model", error) from error


def _read_yaml(path: str) -> Any:
    yaml = _yaml()
    try:
        return yaml.safe_load(_read_text(path, "YAML model"))
    except yaml.YAMLError as error:
        raise _io.corrupt_file_error(path, "YAML model", error) from error


def _from_config(config, custom_objects, safe_mode, source):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"{source} describes no Keras object (no 'class_name').")
    config = _io.with_keras_modules(config)
    config.pop("compile_config", None)
    model = keras.saving.deserialize_keras_object(
        config, custom_objects=custom_objects, safe_mode=safe_mode
    )
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"{source} describes a {type(model).__name__}, not a keras.Model."
        )
    return model
