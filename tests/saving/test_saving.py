"""Tests for kerasx.saving: formats, atomic writes, errors, training resume."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import yaml  # In the `dev` extra (one test hides it to check the error).

from kerasx.models import build_mlp
from kerasx.saving import from_json, load, save, to_json

FORMATS = [
    "model.keras",
    "model.h5",
    "model.hdf5",
    "model.json",
    "model.yaml",
    "model.weights.h5",
]


def _small_model(hidden=(6, 5)) -> keras.Model:
    return build_mlp((4,), 3, hidden_units=hidden, batch_norm="before")


def _load_any(path, **kwargs):
    model = _small_model() if str(path).endswith(".weights.h5") else None
    return load(path, model=model, **kwargs)


@pytest.mark.parametrize("name", FORMATS)
def test_round_trip_predictions_equal(name, tmp_path, rng):
    model = _small_model()
    x = rng.normal(size=(5, 4)).astype("float32")
    save(model, tmp_path / name)
    loaded = _load_any(tmp_path / name)
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_json_writes_architecture_and_weights_side_by_side(tmp_path):
    save(_small_model(), tmp_path / "net.json")
    assert sorted(os.listdir(tmp_path)) == ["net.json", "net.weights.h5"]
    assert '"class_name": "Functional"' in (tmp_path / "net.json").read_text()


def test_json_load_is_uncompiled_instead_of_default_optimizer(tmp_path):
    model = _small_model()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    save(model, tmp_path / "m.json")
    assert '"compile_config"' in (tmp_path / "m.json").read_text()
    # keras.models.model_from_json would compile with RMSprop here.
    assert not load(tmp_path / "m.json").compiled
    assert not from_json(to_json(model)).compiled


def test_weights_suffix_wins_over_h5(tmp_path):
    save(_small_model(), tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match=r"Expected the keras\.Model to load"):
        load(tmp_path / "w.weights.h5")


def test_unknown_suffix_lists_supported(tmp_path):
    expected = "'.weights.h5', '.keras', '.h5', '.hdf5', '.json', '.yaml', '.yml'"
    with pytest.raises(ValueError, match=f"ending in one of {expected}"):
        save(_small_model(), tmp_path / "model.pb")
    with pytest.raises(ValueError, match=r"Received: path='model\.toml'"):
        load("model.toml")


# --------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_save_leaves_existing_files_intact(name, error, tmp_path, monkeypatch):
    save(_small_model(), tmp_path / name)
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}

    def fail(*args, **kwargs):
        path = args[-1]
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise error("interrupted mid-save")

    monkeypatch.setattr(keras.saving, "save_model", fail)
    monkeypatch.setattr(keras.Model, "save_weights", fail)
    with pytest.raises(error, match="interrupted mid-save"):
        save(_small_model((7,)), tmp_path / name)
    after = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    assert after == before  # same files (no temp left), same bytes


def test_failed_json_write_after_weights_leaves_both_files(tmp_path, monkeypatch):
    save(_small_model(), tmp_path / "m.json")
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}

    def fail_to_json(self, **kwargs):
        raise RuntimeError("serialization failed")

    monkeypatch.setattr(keras.Model, "to_json", fail_to_json)
    with pytest.raises(RuntimeError, match="serialization failed"):
        save(_small_model((7,)), tmp_path / "m.json")
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)} == before


def test_overwrite_false_refuses_existing(tmp_path):
    save(_small_model(), tmp_path / "m.json")
    os.remove(tmp_path / "m.json")  # the weights file alone still blocks
    with pytest.raises(FileExistsError, match=r"m\.weights\.h5"):
        save(_small_model(), tmp_path / "m.json", overwrite=False)


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no directory"):
        save(_small_model(), tmp_path / "nope" / "m.keras")


# ---------------------------------------------------------------- load errors
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file '.*gone\.keras'"):
        load(tmp_path / "gone.keras")


def test_json_without_weights_file(tmp_path):
    save(_small_model(), tmp_path / "m.json")
    os.remove(tmp_path / "m.weights.h5")
    with pytest.raises(FileNotFoundError, match=r"no such file '.*m\.weights\.h5'"):
        load(tmp_path / "m.json")


@pytest.mark.parametrize("name", FORMATS)
def test_truncated_file(name, tmp_path):
    save(_small_model(), tmp_path / name)
    architecture = name.endswith((".json", ".yaml"))
    target = tmp_path / (name if not architecture else "model.weights.h5")
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="may be truncated or corrupt"):
        _load_any(tmp_path / name)


def test_garbage_json(tmp_path):
    save(_small_model(), tmp_path / "m.json")
    (tmp_path / "m.json").write_text('{"class_name": "Functional", ')
    with pytest.raises(ValueError, match=r"'.*m\.json': it is not a valid JSON model"):
        load(tmp_path / "m.json")


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "model.json"])
def test_safe_mode_refuses_lambda(name, tmp_path):
    inputs = keras.Input((2,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    save(keras.Model(inputs, outputs), tmp_path / name)
    with pytest.raises(ValueError, match="Lambda"):
        load(tmp_path / name)
    loaded = load(tmp_path / name, safe_mode=False)
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 2)), verbose=0), [[2, 2]])


def test_mismatched_weights_name_layer_and_shapes_and_keep_model(tmp_path):
    save(_small_model((6, 5)), tmp_path / "w.weights.h5")
    target = _small_model((6, 9))
    before = [keras.ops.convert_to_numpy(w).copy() for w in target.weights]
    message = (
        r"do not match the model 'mlp': layer 'block2_dense' \(Dense\) has "
        r"variable shapes \[\(6, 9\)\], but the file has \[\(6, 5\)\]"
    )
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "w.weights.h5", model=target)
    for old, new in zip(before, target.weights, strict=True):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(new))


def test_weights_of_larger_model_are_refused(tmp_path):
    save(build_mlp((4,), 3, hidden_units=(3, 3)), tmp_path / "w.weights.h5")
    # Every layer of the smaller model finds same-shaped weights by position,
    # so Keras alone would load them and silently ignore `block2_dense`.
    target = build_mlp((4,), 3, hidden_units=(3,))
    message = (
        r"holds 6 model variables but the model has 4; it was saved from a "
        r"larger model \(layers in the file that the model lacks: "
        r"\['block2_dense'\]\)"
    )
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "w.weights.h5", model=target)


# ------------------------------------------------------------ resume training
def test_h5_save_does_not_strip_the_optimizer_from_later_saves(tmp_path):
    model = _small_model()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    before = model.get_compile_config()
    save(model, tmp_path / "m.h5")  # Keras' legacy writer pops "optimizer" in place
    assert model.get_compile_config() == before
    save(model, tmp_path / "m.keras")
    assert type(load(tmp_path / "m.keras").optimizer).__name__ == "Adam"


def test_compile_true_resumes_training_exactly(tmp_path, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 16, 4)).astype("float32")
    y = rng.integers(0, 3, size=(4, 16))

    def fresh():
        keras.utils.set_random_seed(seed)
        model = _small_model()
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        return model

    uninterrupted = fresh()
    expected = [uninterrupted.train_on_batch(x[i], y[i]) for i in range(4)]
    first = fresh()
    for i in range(2):
        first.train_on_batch(x[i], y[i])
    save(first, tmp_path / "ckpt.keras")
    resumed = load(tmp_path / "ckpt.keras")
    assert int(resumed.optimizer.iterations) == 2
    losses = [resumed.train_on_batch(x[i], y[i]) for i in (2, 3)]
    np.testing.assert_allclose(losses, expected[2:], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: save("model", p / "m.keras"), "argument `model`.*model='model'"),
        (lambda p: save(_small_model(), 3), "argument `path`.*path=3"),
        (lambda p: save(_small_model(), p / "m.keras", overwrite=1), "overwrite=1"),
        (lambda p: load(p / "m.keras", model=_small_model()), "Expected None"),
        (lambda p: load(p / "m.weights.h5", model="m"), "model='m'"),
        (lambda p: load(p / "m.keras", custom_objects=[]), "custom_objects=\\[\\]"),
        (lambda p: load(p / "m.keras", safe_mode="no"), "safe_mode='no'"),
        (lambda p: load(p / "m.keras", compile=None), "compile=None"),
        (lambda p: to_json(3), "model=3"),
        (lambda p: from_json(b"{}"), "argument `text`"),
        (lambda p: from_json("{}", custom_objects=1), "custom_objects=1"),
        (lambda p: from_json("{}", safe_mode=0), "safe_mode=0"),
    ],
)
def test_argument_validation(call, match, tmp_path):
    save(_small_model(), tmp_path / "m.keras")
    save(_small_model(), tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match=f"Invalid value received for .*{match}"):
        call(tmp_path)


def test_from_json_of_a_layer_is_refused():
    text = keras.saving.serialize_keras_object(keras.layers.Dense(2))
    with pytest.raises(ValueError, match=r"describes a Dense, not a keras\.Model"):
        from_json(json.dumps(text))


def test_yaml_is_plain_safe_yaml_with_weights_beside(tmp_path):
    model = _small_model()
    save(model, tmp_path / "m.yaml")
    assert sorted(os.listdir(tmp_path)) == ["m.weights.h5", "m.yaml"]
    config = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert config == json.loads(model.to_json())
    save(model, tmp_path / "m.yml")
    assert load(tmp_path / "m.yml").count_params() == model.count_params()


def test_yaml_python_tags_are_refused(tmp_path):
    save(_small_model(), tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ValueError, match=r"'.*m\.yaml': it is not a valid YAML model"):
        load(tmp_path / "m.yaml")


def test_yaml_without_pyyaml_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` now fails.
    with pytest.raises(
        ImportError, match=r"needs PyYAML.*pip install 'kerasx\[yaml\]'"
    ):
        save(_small_model(), tmp_path / "m.yaml")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        (None, "no config.json in the archive"),
        (b'{"class_name": ', "config.json: Expecting value"),
        (b"[1, 2]", "config.json describes no Keras object"),
    ],
    ids=["missing", "corrupt", "not_an_object"],
)
def test_keras_archive_with_bad_config_json(edit, detail, tmp_path):
    import zipfile

    save(_small_model(), tmp_path / "m.keras")
    broken = tmp_path / "broken.keras"
    with (
        zipfile.ZipFile(tmp_path / "m.keras") as source,
        zipfile.ZipFile(broken, "w") as target,
    ):
        for item in source.namelist():
            if item != "config.json":
                target.writestr(item, source.read(item))
            elif edit is not None:
                target.writestr(item, edit)
    with pytest.raises(
        ValueError,
        match=rf"Cannot read '.*broken\.keras': it is not a valid Keras .*{detail}",
    ):
        load(broken)


def test_from_json_resolves_keras_builtins_without_module():
    # As Keras 2's `to_json` wrote it: class names without `module`.
    text = json.dumps(
        {
            "class_name": "Sequential",
            "config": {
                "name": "legacy",
                "layers": [
                    {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
                    {
                        "class_name": "Dense",
                        "config": {
                            "units": 3,
                            "kernel_initializer": {
                                "class_name": "Zeros",
                                "config": {},
                            },
                        },
                    },
                    {"class_name": "MCDropout", "config": {"rate": 0.5}},
                ],
            },
        }
    )
    model = from_json(text)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "MCDropout"]
    assert model.count_params() == 15
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"describes a Dense, not a keras\.Model"):
        from_json('{"class_name": "Dense", "config": {"units": 3}}')


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_save_removes_stale_temps_of_dead_writers_only(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".m.keras.tmp-{dead}-0a1b2c3d.keras"
    live = tmp_path / f".m.keras.tmp-{alive}-0a1b2c3d.keras"
    other_target = tmp_path / f".n.keras.tmp-{dead}-0a1b2c3d.keras"
    unrelated = tmp_path / ".m.keras.notes"
    for path in (stale, live, other_target, unrelated):
        path.write_bytes(b"partial")
    save(_small_model(), tmp_path / "m.keras")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["m.keras", live.name, other_target.name, unrelated.name]
    )


def test_temp_names_carry_the_writer_pid(tmp_path, monkeypatch):
    seen = []
    original = keras.saving.save_model

    def spy(model, path, **kwargs):
        seen.append(os.path.basename(path))
        return original(model, path, **kwargs)

    monkeypatch.setattr(keras.saving, "save_model", spy)
    save(_small_model(), tmp_path / "m.keras")
    assert len(seen) == 1
    assert seen[0].startswith(f".m.keras.tmp-{os.getpid()}-") and seen[0].endswith(
        ".keras"
    )
