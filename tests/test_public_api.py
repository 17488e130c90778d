"""Every public name, with the import path users write: a move cannot drop one."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_API = {
    "kerasx.callbacks": [
        "ActivationStats",
        "ExponentialLearningRate",
        "GradientStats",
        "OneCycleScheduler",
        "SnapshotEnsemble",
        "StochasticWeightAveraging",
    ],
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
        "Temperature",
    ],
    "kerasx.lr_finder": [
        "LRFinderResult",
        "find_learning_rate",
        "minimum",
        "plot_lr_vs_loss",
        "slide",
        "smooth",
        "steep",
        "suggest",
        "suggestion_range",
        "valley",
    ],
    "kerasx.models": ["build_cnn", "build_mlp", "build_selu_mlp", "update_batchnorm"],
    "kerasx.ops": ["batch_norm_activation", "batch_norm_activation_inference"],
    "kerasx.plotting": [
        "plot_activation_stats",
        "plot_gradient_norms",
        "plot_learning_curves",
        "plot_lr_vs_loss",
        "reliability_diagram",
    ],
    "kerasx.saving": ["from_json", "load", "save", "to_json"],
    "kerasx.schedules": ["OneCycle"],
    "kerasx.transfer": [
        "FineTuneResult",
        "LayerRateOptimizer",
        "fine_tune",
        "freeze",
        "unfreeze",
    ],
    "kerasx.transforms": [
        "SKIP",
        "RewriteContext",
        "fold_batchnorm",
        "fuse_batchnorm_activation",
        "rewrite_model",
    ],
    "kerasx.uncertainty": [
        "MCResult",
        "apply_temperature",
        "brier_score",
        "calibrate",
        "conformal_sets",
        "ensemble_predict",
        "expected_calibration_error",
        "fit_temperature",
        "from_mc",
        "mc_predict",
        "negative_log_likelihood",
        "ood_metrics",
        "set_coverage",
        "set_size",
        "summarize",
        "to_mc",
    ],
}
NAMES = [(module, name) for module, names in PUBLIC_API.items() for name in names]


@pytest.mark.parametrize(("module", "name"), NAMES)
def test_public_name_imports(module, name):
    import inspect

    obj = getattr(importlib.import_module(module), name)
    # The documented constants are judged by their type (the `SKIP` sentinel).
    constants = {"kerasx.transforms.SKIP"}
    routine = inspect.isclass(obj) or inspect.isfunction(obj)
    assert routine or f"{module}.{name}" in constants, (
        f"{module}.{name} is a {type(obj).__name__}, not a class or function"
    )
    defined_by = obj if routine else type(obj)
    # A re-exported Keras (or other) object would name its own module here.
    assert defined_by.__module__.split(".")[0] == "kerasx", (
        f"{module}.{name} is defined in {defined_by.__module__}, not in kerasx"
    )
    # Its own docstring: `__doc__` is not inherited, so a subclass of a Keras
    # class without one fails.
    assert (defined_by.__doc__ or "").strip(), f"{module}.{name} has no docstring"


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_all_lists_exactly_the_public_names(module):
    # A name added to a module's `__all__` must be added here (and documented).
    assert sorted(importlib.import_module(module).__all__) == sorted(PUBLIC_API[module])


def test_every_public_module_is_a_kerasx_attribute():
    import kerasx

    assert sorted(kerasx.__all__) == sorted(
        ["__version__", *(m.split(".")[1] for m in PUBLIC_API)]
    )
