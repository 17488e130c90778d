"""Every `Example:` in a kerasx docstring runs and prints what it shows.

Modules are found with `pkgutil`, so a new or moved module is covered without
editing this file; a module whose source documents an example (`>>>`) must
yield at least one doctest. Backend kernel modules import their backend, so
they are only imported on that backend.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest

import kerasx

BACKEND_MODULES = {
    "kerasx.ops._tensorflow": "tensorflow",
    "kerasx.ops._distribute_tf": "tensorflow",
    "kerasx.ops._jax": "jax",
    "kerasx.ops._torch": "torch",
}
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(kerasx.__path__, prefix="kerasx.")
    if BACKEND_MODULES.get(info.name, keras.backend.backend())
    == keras.backend.backend()
)


def test_modules_are_found():
    assert {"kerasx.schedules", "kerasx.uncertainty._predict", "kerasx.saving._io"} <= (
        set(MODULES)
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, seed):
    module = importlib.import_module(name)
    globs = {"keras": keras, "np": np, "ops": keras.ops, **vars(module)}
    result = doctest.testmod(
        module, globs=globs, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    if ">>>" in inspect.getsource(module):
        assert result.attempted > 0, f"{name} documents examples that doctest missed"
