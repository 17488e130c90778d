"""Every `Example:` in a kerasx docstring runs on its own and prints what it shows.

Each example runs with empty globals, as a reader pastes it into a fresh
interpreter: nothing is predefined (no `np`, `keras`, `ops`, nor the names of
the module it documents), so an example that forgets an import fails here
instead of only in the reader's session.

Modules are found with `pkgutil`, so a new or moved module is covered without
editing this file; a module whose source documents an example (`>>>`) must
yield at least one doctest. A backend kernel module imports its backend, so it
runs only on that backend and is skipped, with the reason, on the others.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
import sys
import types

import keras
import pytest

import kerasx

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Modules that import a backend library at import time.
BACKEND_MODULES = {
    "kerasx.ops._tensorflow": "tensorflow",
    "kerasx.ops._jax": "jax",
    "kerasx.ops._torch": "torch",
}
FOUND = sorted(
    info.name for info in pkgutil.walk_packages(kerasx.__path__, prefix="kerasx.")
)


def _module_params() -> list:
    backend = keras.backend.backend()
    params = []
    for name in sorted(set(FOUND) | set(BACKEND_MODULES)):
        needs = BACKEND_MODULES.get(name)
        if name not in FOUND:
            reason = f"{name} is listed in BACKEND_MODULES but no longer exists"
        elif needs is not None and needs != backend:
            reason = f"imports {needs}: runs on the {needs} backend"
        else:
            params.append(name)
            continue
        params.append(pytest.param(name, marks=pytest.mark.skip(reason=reason)))
    return params


def run_examples(module: types.ModuleType) -> tuple[doctest.TestResults, str]:
    """Runs every docstring example of `module` with empty globals.

    Returns the counts and the runner's report of the failures.
    """
    finder = doctest.DocTestFinder()
    # One failure reported per docstring: later ones usually follow from it.
    flags = OPTIONFLAGS | doctest.REPORT_ONLY_FIRST_FAILURE
    runner = doctest.DocTestRunner(optionflags=flags)
    report = io.StringIO()
    for test in finder.find(module, module.__name__, globs={}):
        test.globs = {}  # nothing predefined, not even the module's own names
        runner.run(test, out=report.write)
    return runner.summarize(verbose=False), report.getvalue()


def test_modules_are_found():
    assert {
        "kerasx.schedules",
        "kerasx.uncertainty._predict",
        "kerasx.saving._io",
        "kerasx.ops._torch",
    } <= set(FOUND)


def test_backend_modules_are_skipped_on_other_backends():
    params = {p if isinstance(p, str) else p.values[0]: p for p in _module_params()}
    backend = keras.backend.backend()
    for name, needs in BACKEND_MODULES.items():
        if name not in FOUND:
            continue
        if needs == backend:
            assert params[name] == name
        else:
            (mark,) = params[name].marks
            reason = f"imports {needs}: runs on the {needs} backend"
            assert mark.kwargs["reason"] == reason
    # Every other module runs on every backend.
    assert {p for p in params.values() if isinstance(p, str)} >= (
        set(FOUND) - set(BACKEND_MODULES)
    )


@pytest.mark.parametrize("name", _module_params())
def test_docstring_examples(name, seed):
    module = importlib.import_module(name)
    if "matplotlib.pyplot" in sys.modules:
        # A fresh interpreter has no open figures: an example that draws on the
        # current axes must not find another test's.
        sys.modules["matplotlib.pyplot"].close("all")
    result, report = run_examples(module)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring example(s) failed in "
        f"{name} (run with empty globals: each example imports what it uses):\n"
        f"{report}"
    )
    if ">>>" in inspect.getsource(module):
        assert result.attempted > 0, f"{name} documents examples that doctest missed"


PLANTED = """
import numpy as np


def evens(n):
    \"\"\"The first `n` even numbers.

    Example:

{example}
    \"\"\"
    return 2 * np.arange(n)
"""
WITHOUT_IMPORT = """\
    >>> (2 * np.arange(3)).tolist()
    [0, 2, 4]"""
WITH_IMPORT = """\
    >>> import numpy as np
    >>> (2 * np.arange(3)).tolist()
    [0, 2, 4]"""


def _planted_module(example: str) -> types.ModuleType:
    module = types.ModuleType("kerasx_planted")
    source = PLANTED.format(example=example)
    exec(compile(source, "<planted>", "exec"), module.__dict__)
    return module


def test_an_example_without_its_import_fails():
    module = _planted_module(WITHOUT_IMPORT)
    result, report = run_examples(module)
    assert (result.failed, result.attempted) == (1, 1)
    assert "NameError: name 'np' is not defined" in report
    # The module itself imports numpy as np: a runner that lent the example the
    # module's globals, as this test once did, would have let it pass.
    (test,) = doctest.DocTestFinder().find(module, module.__name__)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    assert runner.run(test, out=lambda _: None) == (0, 1)


def test_the_example_with_its_import_passes():
    result, report = run_examples(_planted_module(WITH_IMPORT))
    assert (result.failed, result.attempted) == (0, 2), report
