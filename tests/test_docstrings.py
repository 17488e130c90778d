"""Every `Example:` in a public docstring runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib

import keras
import numpy as np
import pytest

MODULES = [
    "kerasx._calibration",
    "kerasx._dataset_formats",
    "kerasx._learning_curves",
    "kerasx._mc_predict",
    "kerasx.callbacks.lr_finder",
    "kerasx.callbacks.one_cycle",
    "kerasx.datasets",
    "kerasx.layers.batch_norm_activation",
    "kerasx.layers.mc_dropout",
    "kerasx.lr_finder",
    "kerasx.ops",
    "kerasx.plotting",
    "kerasx.schedules",
    "kerasx.transforms",
    "kerasx.uncertainty",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, seed):
    module = importlib.import_module(name)
    globs = {"keras": keras, "np": np, "ops": keras.ops, **vars(module)}
    result = doctest.testmod(
        module, globs=globs, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
