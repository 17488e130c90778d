"""Tests for the compiled-sampler cache of `mc_predict` (`uncertainty/_sampler.py`).

The cache must not keep user models alive: a model that the user deletes is
collected, with its compiled samplers (TensorFlow's `tf.function`, JAX's
jitted step and their captured variables included). The leak check itself is
shown to fail when a strong reference is put back
(`test_leak_check_fails_on_a_strong_reference`): that is the bug this file
was written for, a module-level cache whose samplers held their model.
"""

from __future__ import annotations

import gc
import io
import weakref
import zipfile

import h5py
import keras
import numpy as np

from kerasx.layers import MCDropout
from kerasx.uncertainty import _sampler, mc_predict

X = np.linspace(-1.0, 1.0, 12, dtype="float32").reshape(3, 4)


def _model(rate=0.5):
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            MCDropout(rate),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def _predict_and_forget():
    """Weak references to a model and its sampler after `mc_predict`, model deleted."""
    model = _model()
    mc_predict(model, X, n_samples=4, seed=0)
    model_ref = weakref.ref(model)
    sampler_ref = weakref.ref(_sampler.get_sampler(model, 4, True, False))
    del model
    gc.collect()
    return model_ref, sampler_ref


def test_deleted_model_is_collected_with_its_sampler():
    model_ref, sampler_ref = _predict_and_forget()
    assert model_ref() is None, "mc_predict keeps a deleted model alive"
    assert sampler_ref() is None, "the compiled sampler outlives its model"


def test_leak_check_fails_on_a_strong_reference(monkeypatch):
    """Control: a cache that holds its samplers (as the old one did) is caught."""
    pinned = []
    get_sampler = _sampler.get_sampler

    def pinning_get_sampler(model, *args):
        sampler = get_sampler(model, *args)
        pinned.append(sampler)  # A module-level strong reference, as before.
        return sampler

    monkeypatch.setattr(_sampler, "get_sampler", pinning_get_sampler)
    model_ref, sampler_ref = _predict_and_forget()
    assert model_ref() is not None and sampler_ref() is not None
    pinned.clear()
    gc.collect()
    assert model_ref() is None


def test_sampler_is_reused_for_the_same_model_and_configuration():
    model = _model()
    sampler = _sampler.get_sampler(model, 4, True, False)
    assert sampler.inner is model
    assert _sampler.get_sampler(model, 4, True, False) is sampler
    assert _sampler.get_sampler(model, 5, True, False) is not sampler
    assert _sampler.get_sampler(_model(), 4, True, False) is not sampler


def test_only_the_last_samplers_of_a_model_are_kept():
    model = _model()
    first = _sampler.get_sampler(model, 1, True, False)
    for samples_per_call in range(2, _sampler._CACHE_SIZE + 2):
        last = _sampler.get_sampler(model, samples_per_call, True, False)
    assert _sampler.get_sampler(model, samples_per_call, True, False) is last
    assert _sampler.get_sampler(model, 1, True, False) is not first


def _saved_entries(model, path):
    """The groups and datasets of the weights file of `model.save(path)`."""
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        weights = io.BytesIO(archive.read("model.weights.h5"))
    entries = []
    with h5py.File(weights, "r") as weights_file:
        weights_file.visit(entries.append)
    return entries


def test_cached_samplers_are_not_part_of_the_model(tmp_path):
    model = _model()
    names = [layer.name for layer in model.layers]
    weights = [w.path for w in model.weights]
    config = model.get_config()
    saved = _saved_entries(model, tmp_path / "before.keras")
    mc_predict(model, X, n_samples=4, seed=0)
    assert [layer.name for layer in model.layers] == names
    assert [w.path for w in model.weights] == weights
    assert model.get_config() == config
    # Keras' saving walks the model's attributes: the cache must not show.
    assert _saved_entries(model, tmp_path / "after.keras") == saved


def test_model_at_a_recycled_id_gets_its_own_sampler(monkeypatch):
    """A model created where a collected one lived is never served its sampler.

    CPython rarely reuses a collected model's address at once (building a model
    allocates much), so the reuse is forced: `id` seen by the cache module
    returns one value for every object. With dropout rate 0 the MC mean is the
    model's own prediction, which a sampler of the collected model (other
    random weights) would not give.
    """
    monkeypatch.setattr(_sampler, "id", lambda obj: 1, raising=False)
    for _ in range(2):
        model = _model(rate=0.0)
        result = mc_predict(model, X, n_samples=2, allow_deterministic=True)
        # fp32: the same ops on the same weights, batched differently.
        np.testing.assert_allclose(
            result.mean, keras.ops.convert_to_numpy(model(X)), rtol=1e-5, atol=1e-6
        )
        del model
        gc.collect()
