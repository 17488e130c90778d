"""Imports every public kerasx module and name; run against an installed wheel."""

import importlib

import kerasx

PUBLIC = {
    "kerasx.callbacks": ["OneCycleScheduler", "ExponentialLearningRate"],
    "kerasx.datasets": ["load_data"],
    "kerasx.layers": [
        "BatchNormActivation",
        "MCDropout",
        "MCAlphaDropout",
        "MCGaussianDropout",
        "MCGaussianNoise",
        "MCSpatialDropout1D",
        "MCSpatialDropout2D",
        "MCSpatialDropout3D",
    ],
    "kerasx.lr_finder": ["find_learning_rate", "LRFinderResult", "plot_lr_vs_loss"],
    "kerasx.models": ["build_mlp", "build_selu_mlp", "build_cnn"],
    "kerasx.plotting": [
        "plot_learning_curves",
        "plot_lr_vs_loss",
        "reliability_diagram",
    ],
    "kerasx.saving": ["save", "load", "to_json", "from_json"],
    "kerasx.schedules": ["OneCycle"],
    "kerasx.transforms": ["fold_batchnorm", "fuse_batchnorm_activation"],
    "kerasx.uncertainty": [
        "to_mc",
        "from_mc",
        "mc_predict",
        "MCResult",
        "expected_calibration_error",
        "negative_log_likelihood",
        "brier_score",
    ],
}


def main() -> None:
    assert kerasx.__file__ is not None and "site-packages" in kerasx.__file__, (
        f"expected the installed wheel, got {kerasx.__file__}"
    )
    for module_name, names in PUBLIC.items():
        module = importlib.import_module(module_name)
        for name in names:
            getattr(module, name)
        print(f"ok {module_name}: {', '.join(names)}")
    print(f"kerasx {kerasx.__version__} imports cleanly from {kerasx.__file__}")


if __name__ == "__main__":
    main()
