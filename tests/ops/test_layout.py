"""The fused BatchNorm + activation reads in three files per backend.

A reader following one backend's training or inference path reads
`layers/batch_norm_activation.py` (the layer), `ops/__init__.py` (the public
ops, the argument checks, the activation table, the closed-form math, the
Keras composition and `KERNEL_TABLE` with its dispatch) and that backend's
kernel module (`ops/_tensorflow.py`, `ops/_jax.py` or `ops/_torch.py`). These
tests read the kerasx imports of those files with `ast` (every `import`
statement, at module level or inside a function) and fail when a fourth file
joins the path. Planting any of these makes them fail:

* `from kerasx.ops import _gradients` (or any other `kerasx.ops` submodule, or
  `from kerasx.transforms import rewrite_model`) in the layer module:
  `test_layer_imports_only_ops_and_checks`;
* `from kerasx.ops import _torch` at the top of `ops/__init__.py`, or a helper
  module split back out of it (`from kerasx.ops import _kernel`, even inside a
  function): `test_ops_imports_no_submodule`; a second
  `importlib.import_module` call there, or a new entry in its
  `_COMPILED_BACKENDS`: `test_ops_loads_only_the_backend_modules`;
* `from kerasx import _checks` (or `from kerasx.ops import _rng`) in
  `ops/_jax.py`: `test_backend_module_imports_only_ops`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
KERASX = SRC / "kerasx"
LAYER = KERASX / "layers" / "batch_norm_activation.py"
OPS = KERASX / "ops" / "__init__.py"
BACKEND_MODULES = {
    "tensorflow": KERASX / "ops" / "_tensorflow.py",
    "jax": KERASX / "ops" / "_jax.py",
    "torch": KERASX / "ops" / "_torch.py",
}


def _is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(SRC).parts[:-1])


def kerasx_imports(text: str, package: str) -> set[str]:
    """The kerasx modules that source `text` of a module in `package` imports.

    Every import statement counts, at module level or inside a function.
    `from kerasx.ops import _jax` counts as `kerasx.ops._jax` (a module), while
    `from kerasx.ops import resolve_activation` counts as `kerasx.ops`; relative
    imports are resolved against `package`.
    """
    modules = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                modules.add(submodule if _is_module(submodule) else base)
    return {name for name in modules if name.split(".")[0] == "kerasx"}


def _imports_of(path: Path) -> set[str]:
    return kerasx_imports(path.read_text(), _package_of(path))


def _import_module_calls(path: Path) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "import_module"
    ]


def test_kerasx_imports_reads_every_import_form():
    # The reader itself: a submodule, a name, a nested and a relative import.
    text = (
        "import keras\n"
        "from kerasx import _checks\n"
        "from kerasx.ops import _gradients, resolve_activation\n"
        "def f():\n"
        "    import kerasx.layers\n"
        "    from . import _rng\n"
        "    from .. import _state\n"
    )
    assert kerasx_imports(text, "kerasx.ops") == {
        "kerasx._checks",
        "kerasx.ops._gradients",
        "kerasx.ops",
        "kerasx.layers",
        "kerasx.ops._rng",
        "kerasx._state",
    }


def test_layer_imports_only_ops_and_checks():
    assert _imports_of(LAYER) == {"kerasx.ops", "kerasx._checks"}


def test_ops_imports_no_submodule():
    # `_checks` is the argument-checking module every kerasx module uses.
    assert _imports_of(OPS) == {"kerasx._checks"}


def test_ops_loads_only_the_backend_modules():
    import kerasx.ops

    (call,) = _import_module_calls(OPS)
    assert ast.unparse(call.args[0]) == "f'kerasx.ops.{module_name}'"
    assert set(kerasx.ops._COMPILED_BACKENDS) == set(BACKEND_MODULES)
    for backend, module_name in kerasx.ops._COMPILED_BACKENDS.items():
        assert KERASX / "ops" / f"{module_name}.py" == BACKEND_MODULES[backend]


@pytest.mark.parametrize("backend", sorted(BACKEND_MODULES))
def test_backend_module_imports_only_ops(backend):
    path = BACKEND_MODULES[backend]
    assert _imports_of(path) == {"kerasx.ops"}
    assert _import_module_calls(path) == []
