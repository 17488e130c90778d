"""`import kerasx` registers every serializable kerasx class with Keras.

The model is saved by this process; a fresh interpreter that runs nothing but
`import keras, kerasx` loads it with Keras' own `keras.saving.load_model` and
`keras.models.model_from_json` (no `custom_objects`) and looks every class up
by its registered name. A child process is the only way to be sure the test's
own imports do not do the registering.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

import kerasx
from kerasx.layers import (
    BatchNormActivation,
    MCAlphaDropout,
    MCDropout,
    MCGaussianDropout,
    MCGaussianNoise,
    MCSpatialDropout1D,
    MCSpatialDropout2D,
    MCSpatialDropout3D,
    Temperature,
)
from kerasx.schedules import OneCycle

REGISTERED = sorted(
    [
        "kerasx>ActivationStats",
        "kerasx>BatchNormActivation",
        "kerasx>ExponentialLearningRate",
        "kerasx>GradientStats",
        "kerasx>LayerRateOptimizer",
        "kerasx>MCAlphaDropout",
        "kerasx>MCDropout",
        "kerasx>MCGaussianDropout",
        "kerasx>MCGaussianNoise",
        "kerasx>MCSpatialDropout1D",
        "kerasx>MCSpatialDropout2D",
        "kerasx>MCSpatialDropout3D",
        "kerasx>OneCycle",
        "kerasx>OneCycleScheduler",
        "kerasx>SnapshotEnsemble",
        "kerasx>StochasticWeightAveraging",
        "kerasx>Temperature",
    ]
)

CHILD = textwrap.dedent(
    """
    import json, sys
    import keras, kerasx

    directory, names = sys.argv[1], json.loads(sys.argv[2])
    backend_modules = {m for m in ("tensorflow", "torch", "jax") if m in sys.modules}
    loaded = keras.saving.load_model(f"{directory}/model.keras")
    with open(f"{directory}/model.json") as handle:
        rebuilt = keras.models.model_from_json(handle.read())
    report = {
        "registered": {
            name: getattr(keras.saving.get_registered_object(name), "__name__", None)
            for name in names
        },
        "loaded": [type(layer).__name__ for layer in loaded.layers],
        "rebuilt": [type(layer).__name__ for layer in rebuilt.layers],
        "schedule": type(loaded.optimizer.learning_rate_schedule
                         if hasattr(loaded.optimizer, "learning_rate_schedule")
                         else loaded.optimizer._learning_rate).__name__,
        "modules_after_import": sorted(backend_modules),
    }
    print(json.dumps(report))
    """
)


def _every_class_model():
    inputs = keras.Input((2, 2, 2, 4))
    x = MCSpatialDropout3D(0.1)(inputs)
    x = keras.layers.Reshape((2, 2, 8))(x)
    x = MCSpatialDropout2D(0.1)(x)
    x = keras.layers.Reshape((4, 8))(x)
    x = MCSpatialDropout1D(0.1)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, use_bias=False)(x)
    x = BatchNormActivation("relu")(x)
    for layer in (
        MCDropout(0.2),
        MCAlphaDropout(0.1),
        MCGaussianDropout(0.1),
        MCGaussianNoise(0.1),
    ):
        x = layer(x)
    x = keras.layers.Dense(3, activation="softmax")(x)
    outputs = Temperature(1.5)(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(OneCycle(1e-2, total_steps=10)), "mse")
    return model


LAYERS = [
    "InputLayer",
    "MCSpatialDropout3D",
    "Reshape",
    "MCSpatialDropout2D",
    "Reshape",
    "MCSpatialDropout1D",
    "Flatten",
    "Dense",
    "BatchNormActivation",
    "MCDropout",
    "MCAlphaDropout",
    "MCGaussianDropout",
    "MCGaussianNoise",
    "Dense",
    "Temperature",
]


def test_every_kerasx_class_is_registered_here():
    assert kerasx.__name__ == "kerasx"
    found = sorted(
        name for name in keras.saving.get_custom_objects() if name.startswith("kerasx>")
    )
    assert found == REGISTERED


def test_fresh_import_kerasx_loads_with_keras_own_functions(tmp_path):
    model = _every_class_model()
    model.fit(np.ones((4, 2, 2, 2, 4)), np.ones((4, 3)) / 3, epochs=1, verbose=0)
    keras.saving.save_model(model, tmp_path / "model.keras")
    (tmp_path / "model.json").write_text(model.to_json())
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), json.dumps(REGISTERED)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["registered"] == {name: name.split(">")[1] for name in REGISTERED}
    assert report["loaded"] == LAYERS
    assert report["rebuilt"] == LAYERS
    assert report["schedule"] == "OneCycle"
    if keras.backend.backend() == "jax":
        # Registration must not import TensorFlow (or torch) into a JAX process.
        assert "tensorflow" not in report["modules_after_import"]
        assert "torch" not in report["modules_after_import"]
