"""Tests for `kerasx._keras_internals`: the private names exist, the list is whole.

A Keras (or backend) upgrade that removes or moves a private name kerasx uses
fails here, naming it, instead of deep inside the feature that uses it; and
the `keras` pin in `pyproject.toml` must admit the Keras these tests run on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from pathlib import Path

import keras
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from kerasx import _keras_internals
from kerasx._keras_internals import FUNCTIONAL_MODULE, PRIVATE_USES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli is in the `dev` extra.
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "kerasx"
BACKENDS = ("tensorflow", "jax", "torch")


def _resolve(path: str):
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(f"no module of {path!r} can be imported")


def _sequential():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


def _functional():
    inputs = keras.Input((2,))
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def _compiled():
    model = _sequential()
    model.compile(optimizer="sgd", loss="mse")
    return model


# One instance per class whose listed attribute is set on instances.
INSTANCES = {
    "keras.Sequential": _sequential,
    f"{FUNCTIONAL_MODULE}.Functional": _functional,
    "keras.KerasTensor": lambda: keras.Input((2,)),
    "keras.optimizers.Optimizer": lambda: keras.optimizers.SGD(0.1),
    "keras.Model": _compiled,
}


def _skip_other_backend(library: str) -> None:
    backend = keras.backend.backend()
    if library in BACKENDS and library != backend:
        pytest.skip(
            f"a {library} internal, checked in the KERAS_BACKEND={library} run "
            f"(running on {backend})"
        )


@pytest.mark.parametrize("use", PRIVATE_USES, ids=lambda use: use.path)
def test_listed_private_name_exists(use):
    assert use.library in ("keras", *BACKENDS)
    assert use.users and use.why
    _skip_other_backend(use.library)
    if not use.on_instance:
        _resolve(use.path)
        return
    owner, attribute = use.path.rsplit(".", 1)
    assert owner in INSTANCES, f"add an instance of {owner} to INSTANCES"
    instance = INSTANCES[owner]()
    assert isinstance(instance, _resolve(owner))
    assert hasattr(instance, attribute), f"{owner} instances lost {attribute}"


def _private_imports(text: str) -> set[str]:
    """Dotted private names a source file imports or spells out."""
    names = set()
    for module, imported in re.findall(
        r"from ((?:keras\.src|tensorflow\.python|jax\._src)[\w.]*) import \(?([\w, ]+)",
        text,
    ):
        names |= {
            f"{module}.{name.split(' as ')[0].strip()}" for name in imported.split(",")
        }
    names |= set(re.findall(r"\b(?:torch\.ops\.aten|jax\.core)\.\w+", text))
    names |= set(re.findall(r"[\"'](keras\.src\.[\w.]+)[\"']", text))
    names |= set(
        re.findall(r"\bimport ((?:keras\.src|tensorflow\.python)[\w.]*)", text)
    )
    return names


def test_every_private_import_in_src_is_listed():
    listed = [use.path for use in PRIVATE_USES]
    unlisted = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "_keras_internals.py":
            continue
        for name in _private_imports(path.read_text()):
            if not any(p == name or p.startswith(f"{name}.") for p in listed):
                unlisted.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert unlisted == {}, "list these in kerasx._keras_internals.PRIVATE_USES"


def test_private_import_scan_finds_the_known_uses():
    # The scan above is only as good as its patterns: it must see these.
    text = (
        "from tensorflow.python.ops import control_flow_util\n"
        "torch.ops.aten.native_batch_norm_backward(g)\n"
        "isinstance(x, jax.core.Tracer)\n"
        '_MODULE_OF = {"Functional": "keras.src.models.functional"}\n'
        "from keras.src.utils.naming import to_snake_case as snake\n"
    )
    assert _private_imports(text) == {
        "tensorflow.python.ops.control_flow_util",
        "torch.ops.aten.native_batch_norm_backward",
        "jax.core.Tracer",
        "keras.src.models.functional",
        "keras.src.utils.naming.to_snake_case",
    }


def test_functional_module_is_what_keras_writes():
    config = keras.saving.serialize_keras_object(_functional())
    assert config["module"] == FUNCTIONAL_MODULE


def test_built_input_shape_reads_the_build_config():
    layer = keras.layers.BatchNormalization()
    assert _keras_internals.built_input_shape(layer) is None
    layer.build((None, 3, 4))
    assert _keras_internals.built_input_shape(layer) == (None, 3, 4)


def test_spatial_noise_shape():
    inputs = keras.ops.ones((2, 5, 5, 3))
    spatial = keras.layers.SpatialDropout2D(0.5)
    assert _keras_internals.spatial_noise_shape(spatial, inputs) == (2, 1, 1, 3)
    plain = keras.layers.Dropout(0.5)
    assert _keras_internals.spatial_noise_shape(plain, inputs) is None


def test_global_seed_generator_is_found():
    keras.random.uniform(())  # Unseeded: creates Keras' global generator.
    generator = _keras_internals.global_seed_generator()
    assert isinstance(generator, keras.random.SeedGenerator)


@pytest.mark.backend("torch")
def test_aten_batch_norm_backward_takes_the_arguments_in_order():
    import torch

    # `_schema` is torch's own description of the operator's signature.
    schema = torch.ops.aten.native_batch_norm_backward.default._schema
    names = tuple(argument.name for argument in schema.arguments)
    assert names == _keras_internals.ATEN_BATCH_NORM_BACKWARD_ARGUMENTS


def _keras_pin():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        Requirement(text)
        for text in pyproject["project"]["dependencies"]
        if Requirement(text).name == "keras"
    ]
    assert len(pins) == 1, pins
    return pins[0].specifier


def test_keras_pin_admits_the_installed_keras():
    installed = Version(importlib.metadata.version("keras"))
    pin = _keras_pin()
    assert pin.contains(installed, prereleases=True), (
        f"Keras {installed} is installed but pyproject.toml pins keras{pin}"
    )


def test_keras_pin_stops_before_the_next_untested_minor():
    # `<4` would promise every Keras 3 release; CI tests only the newest one
    # the pin admits, so the bound is a minor release (`<3.16`).
    uppers = [Version(s.version) for s in _keras_pin() if s.operator == "<"]
    assert len(uppers) == 1 and len(uppers[0].release) == 2 and uppers[0].minor > 0
