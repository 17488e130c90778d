"""Private helpers of `kerasx.saving`: atomic writes and checked loading.

Kept apart from `kerasx.saving` so that the package module holds only the
four public functions and their documentation.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import secrets
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import keras

from kerasx import _keras_internals
from kerasx._state import VariableSnapshot


@contextlib.contextmanager
def atomic_targets(targets: Sequence[tuple[str, str]]) -> Iterator[list[str]]:
    """Yields temp paths to write; on success moves each onto its target.

    `targets` holds `(final_path, suffix)` pairs. Each temp file lives in the
    final file's directory (so `os.replace` is an atomic rename on the same
    file system), is named `.<name>.tmp-<pid>-<token><suffix>` (Keras picks
    the format from the suffix; the writer's PID tells later saves whether
    the writer is still alive) and is removed if the body raises, leaving the
    final files untouched. Temp files of the same targets left by writers
    that are no longer running (killed before they could clean up) are
    removed first. The replacements happen in order, after every temp file
    has been written and flushed to disk. Targets are file paths, not links:
    `save` resolves symbolic links first, so that a link is written through.
    """
    temps = []
    for final_path, suffix in targets:
        remove_stale_temps(final_path, suffix)
        directory, base = os.path.split(os.path.abspath(final_path))
        token = secrets.token_hex(4)
        temps.append(
            os.path.join(directory, f".{base}.tmp-{os.getpid()}-{token}{suffix}")
        )
    try:
        yield temps
        for temp in temps:
            _fsync(temp)
        for temp, (final_path, _) in zip(temps, targets, strict=True):
            os.replace(temp, final_path)
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
    for directory in dict.fromkeys(
        os.path.dirname(os.path.abspath(final_path)) for final_path, _ in targets
    ):
        _fsync_directory(directory)


def _process_is_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # Signal 0: only checks that the process exists.
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # Alive, owned by another user.
    except OSError:
        return True  # Unknown: never delete what a live writer may own.
    return True


def remove_stale_temps(final_path: str, suffix: str) -> list[str]:
    """Deletes temp files of `final_path` whose writer process has exited.

    Returns the removed paths. Only names this module writes are considered,
    and only on POSIX, where a PID can be checked without side effects.
    """
    if os.name != "posix":
        return []
    directory, base = os.path.split(os.path.abspath(final_path))
    pattern = re.compile(
        rf"\.{re.escape(base)}\.tmp-(\d+)-[0-9a-f]+{re.escape(suffix)}"
    )
    removed = []
    for name in os.listdir(directory):
        match = pattern.fullmatch(name)
        if match and not _process_is_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
                removed.append(os.path.join(directory, name))
    return removed


@contextlib.contextmanager
def preserving_compile_config(model: keras.Model) -> Iterator[None]:
    """Undoes the legacy HDF5 writer's in-place edit of the compile config.

    Keras' `legacy/saving/saving_utils.model_metadata` pops `"optimizer"` from
    `model._compile_config.config` itself, so every later `.keras` save of the
    same model silently loses its optimizer. Restoring the dict keeps `save`
    free of side effects on the user's model.
    """
    config = _keras_internals.compile_config_dict(model)
    saved = dict(config) if config is not None else None
    try:
        yield
    finally:
        if saved is not None:
            config.clear()
            config.update(saved)


def _fsync(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(directory: str) -> None:
    # Makes the renames durable on POSIX; directories cannot be opened on Windows.
    if os.name == "posix":
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def naming_file(path: str) -> Iterator[None]:
    """Prefixes Keras' deserialization errors with the file they come from.

    Keras' messages ("Could not locate class 'Block'", "A total of 1 objects
    could not be loaded") do not say which file was being read. A
    `ValueError` stays a `ValueError` and a `TypeError` a `TypeError`.
    """
    try:
        yield
    except (TypeError, ValueError) as error:
        if path in str(error):
            raise
        kind = ValueError if isinstance(error, ValueError) else TypeError
        raise kind(f"Cannot load '{path}': {error}") from error


def corrupt_file_error(path: str, kind: str, cause: Any = None) -> ValueError:
    detail = f" ({cause})" if cause else ""
    return ValueError(
        f"Cannot read '{path}': it is not a valid {kind} file; it may be "
        f"truncated or corrupt{detail}."
    )


def _read_weight_groups(path: str) -> dict[str, tuple[str, list[tuple]]]:
    """`{group path: (layer name, [variable shapes])}` of a `.weights.h5`."""
    import h5py

    groups: dict[str, tuple[str, list[tuple]]] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            group, _, _ = name.rpartition("/vars/")
            layer_name = str(obj.parent.attrs.get("name", group))
            groups.setdefault(group, (layer_name, []))[1].append(tuple(obj.shape))

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return groups


def _describe_mismatch(model: keras.Model, groups: dict) -> str | None:
    """Names the first model layer whose variables differ from the file's."""
    if not any(group.startswith("layers/") for group in groups):
        return None  # Not a Functional/Sequential file layout.
    used: dict[str, int] = {}
    for layer in model.layers:
        key = _keras_internals.to_snake_case(type(layer).__name__)
        if key in used:
            used[key] += 1
            path = f"layers/{key}_{used[key]}"
        else:
            used[key] = 0
            path = f"layers/{key}"
        expected = [tuple(weight.shape) for weight in layer.weights]
        found = [
            shape
            for group, (_, shapes) in sorted(groups.items())
            if group == path or group.startswith(f"{path}/")
            for shape in shapes
        ]
        if sorted(expected) != sorted(found):
            return (
                f"layer '{layer.name}' ({type(layer).__name__}) has variable "
                f"shapes {expected}, but the file has {found} at '{path}'"
            )
    return None


def load_weights_checked(model: keras.Model, path: str) -> None:
    """`model.load_weights(path)`, all-or-nothing, with a clear mismatch error."""
    import h5py

    if not h5py.is_hdf5(path):
        raise corrupt_file_error(path, "HDF5 weights")
    try:
        groups = _read_weight_groups(path)
    except OSError as error:
        raise corrupt_file_error(path, "HDF5 weights", error) from error
    model_groups = {
        group: entry
        for group, entry in groups.items()
        if group.split("/")[0] != "optimizer"
    }
    n_file = sum(len(shapes) for _, shapes in model_groups.values())
    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    snapshot = VariableSnapshot(variables)
    try:
        model.load_weights(path)
        if n_file > len(model.weights):
            model_names = {layer.name for layer in model.layers}
            extra = sorted({name for name, _ in model_groups.values()} - model_names)
            raise ValueError(
                f"the file holds {n_file} model variables but the model has "
                f"{len(model.weights)}; it was saved from a larger model "
                f"(layers in the file that the model lacks: {extra})"
            )
    except Exception as error:
        snapshot.restore()
        detail = _describe_mismatch(model, model_groups) or str(error)
        raise ValueError(
            f"The weights in '{path}' do not match the model "
            f"'{model.name}': {detail}. The model's weights were left unchanged."
        ) from error


_CORRUPT_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError)


def load_whole_model(
    path: str, fmt: str, custom_objects: Any, safe_mode: bool, compile: bool
) -> keras.Model:
    """`keras.saving.load_model` with a clear error for a corrupt file."""
    import h5py

    kind = "Keras (.keras zip archive)" if fmt == "keras" else "HDF5 model"
    is_valid = zipfile.is_zipfile(path) if fmt == "keras" else h5py.is_hdf5(path)
    if not is_valid:
        raise corrupt_file_error(path, kind)
    if fmt == "keras":
        _check_keras_archive(path, kind)
    try:
        with naming_file(path):
            return keras.saving.load_model(
                path,
                custom_objects=custom_objects,
                compile=compile,
                safe_mode=safe_mode,
            )
    except PermissionError:
        raise
    except _CORRUPT_ERRORS as error:
        raise corrupt_file_error(path, kind, error) from error


# The weights member of a `.keras` archive, as Keras' `saving_lib` reads it.
_KERAS_WEIGHTS_MEMBERS = ("model.weights.h5", "model.weights.npz")


def _check_keras_archive(path: str, kind: str) -> None:
    """Refuses a `.keras` archive without a readable `config.json` or weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" not in names:
                raise corrupt_file_error(path, kind, "no config.json in the archive")
            if not any(name in names for name in _KERAS_WEIGHTS_MEMBERS):
                raise corrupt_file_error(
                    path, kind, "no weights (model.weights.h5 or .npz) in the archive"
                )
            with archive.open("config.json") as handle:
                config = json.loads(handle.read().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt_file_error(path, kind, f"config.json: {error}") from error
    except _CORRUPT_ERRORS as error:
        raise corrupt_file_error(path, kind, error) from error
    if not isinstance(config, dict) or "class_name" not in config:
        raise corrupt_file_error(path, kind, "config.json describes no Keras object")


# Namespaces searched, in order, for a `class_name` a config gives without a
# `module` (configs written by hand or by Keras 2): the public Keras API.
_NAMESPACES = (
    "keras.layers",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.optimizers",
    "keras.losses",
    "keras.metrics",
    "keras",
)
# Keras writes these with their `keras.src` module; no public alias has the name.
_MODULE_OF = {"Functional": _keras_internals.FUNCTIONAL_MODULE}


def with_keras_modules(config: Any) -> Any:
    """`config` with `module` filled in for Keras built-ins that lack it.

    Keras 3 deserialization finds a class by `module` + `class_name`, or by a
    registered name; a bare `{"class_name": "Dense", ...}` is otherwise not
    found. A bare kerasx class name gets its registered name
    (`"kerasx>MCDropout"`); other registered objects and unknown names are
    left untouched.
    """
    if isinstance(config, list):
        return [with_keras_modules(item) for item in config]
    if not isinstance(config, dict):
        return config
    config = {key: with_keras_modules(value) for key, value in config.items()}
    name = config.get("class_name")
    if (
        isinstance(name, str)
        and "config" in config
        and not config.get("module")
        and keras.saving.get_registered_object(name) is None
    ):
        kerasx_class = keras.saving.get_registered_object(f"kerasx>{name}")
        if kerasx_class is not None:
            config["module"] = kerasx_class.__module__
            config["registered_name"] = f"kerasx>{name}"
            return config
        module = _MODULE_OF.get(name) or next(
            (
                namespace
                for namespace in _NAMESPACES
                if isinstance(
                    getattr(importlib.import_module(namespace), name, None), type
                )
            ),
            None,
        )
        if module is not None:
            config["module"] = module
    return config
