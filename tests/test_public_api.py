"""Every public name, with the import path users write: a move cannot drop one."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_API = {
    "kerasx.callbacks": ["ExponentialLearningRate", "OneCycleScheduler"],
    "kerasx.datasets": ["load_data", "read_idx", "search_paths"],
    "kerasx.layers": [
        "BatchNormActivation",
        "MCAlphaDropout",
        "MCDropout",
        "MCGaussianDropout",
        "MCGaussianNoise",
        "MCSpatialDropout1D",
        "MCSpatialDropout2D",
        "MCSpatialDropout3D",
    ],
    "kerasx.lr_finder": [
        "LRFinderResult",
        "find_learning_rate",
        "minimum",
        "plot_lr_vs_loss",
        "smooth",
        "steep",
        "suggest",
        "suggestion_range",
        "valley",
    ],
    "kerasx.models": ["build_cnn", "build_mlp", "build_selu_mlp"],
    "kerasx.ops": ["batch_norm_activation", "batch_norm_activation_inference"],
    "kerasx.plotting": [
        "plot_learning_curves",
        "plot_lr_vs_loss",
        "reliability_diagram",
    ],
    "kerasx.saving": ["from_json", "load", "save", "to_json"],
    "kerasx.schedules": ["OneCycle"],
    "kerasx.transforms": [
        "SKIP",
        "RewriteContext",
        "fold_batchnorm",
        "fuse_batchnorm_activation",
        "rewrite_model",
    ],
    "kerasx.uncertainty": [
        "MCResult",
        "brier_score",
        "ensemble_predict",
        "expected_calibration_error",
        "from_mc",
        "mc_predict",
        "negative_log_likelihood",
        "summarize",
        "to_mc",
    ],
}
NAMES = [(module, name) for module, names in PUBLIC_API.items() for name in names]


@pytest.mark.parametrize(("module", "name"), NAMES)
def test_public_name_imports(module, name):
    assert getattr(importlib.import_module(module), name) is not None


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_all_lists_exactly_the_public_names(module):
    # A name added to a module's `__all__` must be added here (and documented).
    assert sorted(importlib.import_module(module).__all__) == sorted(PUBLIC_API[module])


def test_every_public_module_is_a_kerasx_attribute():
    import kerasx

    assert sorted(kerasx.__all__) == sorted(
        ["__version__", *(m.split(".")[1] for m in PUBLIC_API)]
    )
