"""`kerasx.saving` through symbolic links, and the files `load` refuses."""

from __future__ import annotations

import os
import re
import zipfile

import keras
import numpy as np
import pytest

from kerasx.saving import load, save

SUFFIXES = [".keras", ".h5", ".hdf5", ".json", ".yaml", ".yml", ".weights.h5"]
ARCHITECTURE = (".json", ".yaml", ".yml")

pytestmark = pytest.mark.skipif(
    not hasattr(os, "symlink") or os.name != "posix",
    reason="symbolic links need POSIX",
)


def _model(units):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def _load(path, units):
    return (
        load(path, model=_model(units))
        if str(path).endswith(".weights.h5")
        else load(path)
    )


def _kernel(model):
    return keras.ops.convert_to_numpy(model.layers[-1].kernel)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_save_writes_through_a_symlink_and_keeps_it(suffix, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    save(_model(2), real / f"target{suffix}")
    link = tmp_path / f"link{suffix}"
    link.symlink_to(real / f"target{suffix}")
    side_link = None
    if suffix in ARCHITECTURE:  # The side file is a link too.
        side_link = tmp_path / "link.weights.h5"
        side_link.symlink_to(real / "target.weights.h5")
    new = _model(2)
    save(new, link)
    assert link.is_symlink() and os.readlink(link) == str(real / f"target{suffix}")
    assert side_link is None or side_link.is_symlink()
    # The linked files hold the new model; no temp file is left anywhere.
    reloaded = _load(real / f"target{suffix}", 2)
    np.testing.assert_array_equal(_kernel(reloaded), _kernel(new))
    expected = {f"target{suffix}"} | ({"target.weights.h5"} if side_link else set())
    assert set(os.listdir(real)) == expected
    assert len(os.listdir(tmp_path)) == (3 if side_link else 2)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_side_file_beside_the_link_when_only_the_architecture_is_linked(
    suffix, tmp_path
):
    # `load(link)` reads `<link stem>.weights.h5`, so that is the file written.
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / f"target{suffix}"
    save(_model(2), target)
    link = tmp_path / f"link{suffix}"
    link.symlink_to(target)
    new = _model(2)
    save(new, link)
    assert link.is_symlink()
    assert (tmp_path / "link.weights.h5").is_file()
    assert not (tmp_path / "link.weights.h5").is_symlink()
    np.testing.assert_array_equal(_kernel(load(link)), _kernel(new))


def test_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "link.keras"
    link.symlink_to(tmp_path / "real" / "new.keras")
    save(_model(2), link)
    assert link.is_symlink() and (tmp_path / "real" / "new.keras").is_file()


def test_symlink_into_a_missing_directory(tmp_path):
    link = tmp_path / "link.keras"
    link.symlink_to(tmp_path / "gone" / "new.keras")
    message = f"Cannot save to '{link}': no directory '{tmp_path / 'gone'}'."
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        save(_model(2), link)


def test_save_onto_a_directory(tmp_path):
    path = tmp_path / "m.keras"
    path.mkdir()
    message = f"Cannot save to '{path}': '{path}' is a directory."
    with pytest.raises(IsADirectoryError, match=re.escape(message)):
        save(_model(2), path)


def test_load_a_directory(tmp_path):
    (tmp_path / "m.keras").mkdir()
    path = tmp_path / "m.keras"
    with pytest.raises(
        IsADirectoryError,
        match=re.escape(f"Cannot load '{path}': '{path}' is a directory."),
    ):
        load(path)


def _rewrite_archive(source, target, members):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = members.get(name, old.read(name))
            if data is not None:
                new.writestr(name, data)


def test_keras_archive_without_weights(tmp_path):
    save(_model(2), tmp_path / "m.keras")
    broken = tmp_path / "no_weights.keras"
    _rewrite_archive(tmp_path / "m.keras", broken, {"model.weights.h5": None})
    message = (
        f"Cannot read '{broken}': it is not a valid Keras (.keras zip archive) "
        "file; it may be truncated or corrupt (no weights (model.weights.h5 or "
        ".npz) in the archive)."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load(broken)


def test_keras_archive_with_weights_of_another_model_names_the_file(tmp_path):
    save(_model(2), tmp_path / "a.keras")
    save(_model(5), tmp_path / "b.keras")
    with zipfile.ZipFile(tmp_path / "b.keras") as other:
        weights = other.read("model.weights.h5")
    mixed = tmp_path / "mixed.keras"
    _rewrite_archive(tmp_path / "a.keras", mixed, {"model.weights.h5": weights})
    with pytest.raises(ValueError, match=re.escape(f"Cannot load '{mixed}': ")):
        load(mixed)


@pytest.mark.parametrize(("suffix", "kind"), [(".json", "JSON"), (".yaml", "YAML")])
def test_architecture_file_that_is_not_text(suffix, kind, tmp_path):
    path = tmp_path / f"m{suffix}"
    save(_model(2), path)
    path.write_bytes(b"\xff\xfe{")
    message = (
        f"Cannot read '{path}': it is not a valid {kind} model file; it may be "
        "truncated or corrupt ('utf-8' codec can't decode byte 0xff"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load(path)


def test_json_file_with_an_unknown_class_names_the_file(tmp_path):
    path = tmp_path / "m.json"
    save(_model(2), path)
    path.write_text('{"class_name": "NoSuchLayer", "config": {}}')
    with pytest.raises(
        TypeError,
        match=re.escape(f"Cannot load '{path}': Could not locate class 'NoSuchLayer'"),
    ):
        load(path)
