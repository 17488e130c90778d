"""kerasx: tested, installable Keras 3 extensions.

Submodules are imported lazily on first attribute access, so ``import kerasx``
costs no more than ``import keras`` and never imports matplotlib or a second
backend::

    import kerasx
    schedule = kerasx.schedules.OneCycle(1e-2, total_steps=1000)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kerasx._version import __version__

_SUBMODULES = (
    "callbacks",
    "datasets",
    "layers",
    "lr_finder",
    "models",
    "ops",
    "plotting",
    "saving",
    "schedules",
    "transforms",
    "uncertainty",
)

__all__ = ["__version__", *_SUBMODULES]

if TYPE_CHECKING:  # pragma: no cover
    from kerasx import (  # noqa: F401
        callbacks,
        datasets,
        layers,
        lr_finder,
        models,
        ops,
        plotting,
        saving,
        schedules,
        transforms,
        uncertainty,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"kerasx.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kerasx' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
