"""kerasx objects load in a fresh interpreter without `custom_objects`.

A model with `BatchNormActivation`, `MCDropout` and a `OneCycle`-scheduled
optimizer is saved in every format by this process; one child process (with
nothing but `kerasx.saving` imported) loads each file and writes its
predictions. Running the loads in a child is the only way to be sure the
kerasx classes are registered by `load` itself rather than by the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

import kerasx.saving

# Legacy `.h5` loading imports TensorFlow inside Keras even on JAX, so it goes
# last; the child records after each load whether TensorFlow is imported.
FORMATS = ["model.keras", "model.json", "model.weights.h5", "model.h5"]

# Shared by parent and child: the weights-only format needs the architecture.
ARCHITECTURE = textwrap.dedent(
    """
    import keras
    from kerasx.layers import BatchNormActivation, MCDropout

    def build_model():
        inputs = keras.Input((6,), name="input")
        x = keras.layers.Dense(8, use_bias=False, name="dense")(inputs)
        x = BatchNormActivation("relu", name="bn_relu")(x)
        x = MCDropout(0.5, seed=7, name="mc_dropout")(x)
        outputs = keras.layers.Dense(3, activation="softmax", name="output")(x)
        return keras.Model(inputs, outputs)
    """
)

CHILD = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    import kerasx.saving

    directory = sys.argv[1]
    x = np.load(f"{directory}/x.npy")
    report = {"classes": {}, "schedules": {}, "tensorflow_imported": {}}
    loaded_models = {}
    for name in json.loads(sys.argv[2]):
        model = None
        if name.endswith(".weights.h5"):
            namespace = {}
            exec(sys.argv[3], namespace)
            model = namespace["build_model"]()
        loaded_models[name] = kerasx.saving.load(f"{directory}/{name}", model=model)
        report["tensorflow_imported"][name] = "tensorflow" in sys.modules
    # Inspection below may import TensorFlow inside Keras, so it comes last.
    for name, loaded in loaded_models.items():
        report["classes"][name] = [type(layer).__name__ for layer in loaded.layers]
        if getattr(loaded, "optimizer", None) is not None:
            config = loaded.optimizer.get_config()["learning_rate"]
            report["schedules"][name] = config["class_name"]
        features = keras.Model(loaded.inputs, loaded.get_layer("bn_relu").output)
        np.save(f"{directory}/{name}.features.npy", features.predict(x, verbose=0))
        np.save(f"{directory}/{name}.first_predict.npy", loaded.predict(x, verbose=0))
    print(json.dumps(report))
    """
)


def _build_trained_model(seed: int) -> keras.Model:
    from kerasx.schedules import OneCycle

    namespace: dict = {}
    exec(ARCHITECTURE, namespace)
    model = namespace["build_model"]()
    optimizer = keras.optimizers.Adam(OneCycle(1e-2, total_steps=10))
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 6)).astype("float32")
    model.fit(x, rng.integers(0, 3, size=16), batch_size=8, epochs=1, verbose=0)
    return model


def test_every_format_loads_in_fresh_process(tmp_path, seed):
    model = _build_trained_model(seed)
    x = np.random.default_rng(seed + 1).normal(size=(5, 6)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    for name in FORMATS:
        kerasx.saving.save(model, tmp_path / name)
    features = keras.Model(model.inputs, model.get_layer("bn_relu").output)
    expected_features = features.predict(x, verbose=0)
    # MCDropout(seed=7) samples the same masks in any fresh copy of the model.
    fresh_copy = kerasx.saving.load(tmp_path / "model.keras")
    expected_first_predict = fresh_copy.predict(x, verbose=0)

    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), json.dumps(FORMATS), ARCHITECTURE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    layer_classes = ["InputLayer", "Dense", "BatchNormActivation", "MCDropout", "Dense"]
    assert report["classes"] == dict.fromkeys(FORMATS, layer_classes)
    assert report["schedules"] == {"model.keras": "OneCycle", "model.h5": "OneCycle"}
    if keras.backend.backend() == "jax":
        # Registering kerasx objects must not pull TensorFlow into a JAX run.
        imported = report["tensorflow_imported"]
        assert [imported[name] for name in FORMATS[:3]] == [False] * 3
    for name in FORMATS:
        loaded_features = np.load(tmp_path / f"{name}.features.npy")
        np.testing.assert_array_equal(loaded_features, expected_features)
        first_predict = np.load(tmp_path / f"{name}.first_predict.npy")
        np.testing.assert_allclose(first_predict, expected_first_predict, rtol=1e-6)


WRITER = textwrap.dedent(
    """
    import sys
    import keras
    import kerasx.saving

    inputs = keras.Input((1000,))
    outputs = keras.layers.Dense(4000)(keras.layers.Dense(2000)(inputs))
    model = keras.Model(inputs, outputs)  # ~10 M parameters, ~40 MB per file.
    print("ready", flush=True)
    while True:
        kerasx.saving.save(model, sys.argv[1])
    """
)


def _temp_files(directory):
    return sorted(name for name in os.listdir(directory) if ".tmp-" in name)


def test_sigkill_during_save_leaves_nothing_after_the_next_save(tmp_path):
    import signal
    import time

    target = tmp_path / "model.keras"
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    kills = 0
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert writer.stdout.readline().strip() == b"ready"
            deadline = time.monotonic() + 120
            # Kill while a temp file of this writer exists: mid-save.
            while not any(f"tmp-{writer.pid}-" in n for n in _temp_files(tmp_path)):
                assert time.monotonic() < deadline, "the writer never saved"
                time.sleep(0.005)
            os.kill(writer.pid, signal.SIGKILL)
            kills += 1
        finally:
            writer.kill()
            writer.wait()
    left = _temp_files(tmp_path)
    assert len(left) >= 1  # What SIGKILL leaves behind ...
    small = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    kerasx.saving.save(small, target)  # ... the next save of the target removes.
    assert _temp_files(tmp_path) == []
    assert kerasx.saving.load(target).count_params() == 8
    assert kills == 3
