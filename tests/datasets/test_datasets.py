import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasx import datasets
from kerasx.datasets import _formats as formats
from kerasx.datasets import load_data, read_idx

IDX_NAMES = formats.IDX_FILES


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> None:
    """Writes `array` in the idx format of LeCun's MNIST files."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def make_mnist_like(n_train: int = 6, n_test: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, n_train, dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, n_test, dtype=np.uint8)
    return (x_train, y_train), (x_test, y_test)


def write_idx_dir(directory: Path, data) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = data
    arrays = {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
    }
    for key, fname in IDX_NAMES.items():
        write_idx(directory / fname, arrays[key])


def cifar_batch_bytes(images_nchw: np.ndarray, labels: list[int]) -> bytes:
    # The published batches are Python 2 pickles of a dict with bytes keys.
    batch = {
        b"batch_label": b"testing batch",
        b"data": images_nchw.reshape(len(images_nchw), -1),
        b"labels": labels,
        b"filenames": [f"img{i}.png".encode() for i in range(len(labels))],
    }
    return pickle.dumps(batch, protocol=2)


def make_cifar(root: Path, per_batch: int = 2, seed: int = 0) -> dict[str, tuple]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    content = {}
    for name in formats.CIFAR_BATCHES:
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        (root / name).write_bytes(cifar_batch_bytes(images, labels))
        content[name] = (images, labels)
    return content


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), array)
    assert read_idx(tmp_path / "a.gz").dtype == np.uint8


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_load_idx_from_cache_dir(isolated, name):
    data = make_mnist_like()
    sub = "fashion-mnist" if name == "fashion_mnist" else "mnist"
    write_idx_dir(isolated / "data" / sub, data)
    (x_train, y_train), (x_test, y_test) = load_data(name, cache_dir=isolated / "data")
    np.testing.assert_array_equal(x_train, data[0][0])
    np.testing.assert_array_equal(y_train, data[0][1])
    np.testing.assert_array_equal(x_test, data[1][0])
    np.testing.assert_array_equal(y_test, data[1][1])
    assert x_train.shape == (6, 28, 28) and y_train.shape == (6,)
    assert x_train.dtype == y_train.dtype == np.uint8


def test_mnist_npz_in_keras_cache(isolated):
    (x_train, y_train), (x_test, y_test) = make_mnist_like(seed=3)
    cache = isolated / "keras_home"
    cache.mkdir()
    np.savez(
        cache / "mnist.npz",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
    )
    (xt, _), (_, ys) = load_data("mnist")
    np.testing.assert_array_equal(xt, x_train)
    np.testing.assert_array_equal(ys, y_test)


def test_search_order_prefers_cache_dir_then_env(isolated, monkeypatch):
    first, second = make_mnist_like(seed=1), make_mnist_like(seed=2)
    write_idx_dir(isolated / "arg", first)
    write_idx_dir(isolated / "env", second)
    monkeypatch.setenv("KERASX_DATA", str(isolated / "env"))
    got = load_data("fashion_mnist", cache_dir=isolated / "arg")
    np.testing.assert_array_equal(got[0][0], first[0][0])
    got = load_data("fashion_mnist")
    np.testing.assert_array_equal(got[0][0], second[0][0])
    paths = datasets.search_paths("fashion_mnist", isolated / "arg")
    assert paths == [
        isolated / "arg",
        isolated / "env",
        isolated / "keras_home",
        isolated / "no_debian",
    ]


def test_debian_dir_is_searched_for_fashion_mnist_only(isolated, monkeypatch):
    data = make_mnist_like(seed=4)
    write_idx_dir(isolated / "debian", data)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", isolated / "debian")
    np.testing.assert_array_equal(load_data("fashion_mnist")[1][1], data[1][1])
    assert isolated / "debian" not in datasets.search_paths("mnist")


@pytest.mark.parametrize("layout", ["keras3", "plain", "tarball"])
def test_cifar10_layouts(isolated, layout):
    base = isolated / "data"
    if layout == "keras3":
        content = make_cifar(
            base / "cifar-10-batches-py-target" / "cifar-10-batches-py"
        )
    elif layout == "plain":
        content = make_cifar(base / "cifar-10-batches-py")
    else:
        content = make_cifar(isolated / "src" / "cifar-10-batches-py")
        base.mkdir()
        with tarfile.open(base / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(
                isolated / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py"
            )
    (x_train, y_train), (x_test, y_test) = load_data("cifar10", cache_dir=base)
    assert x_train.shape == (10, 32, 32, 3) and y_train.shape == (10, 1)
    assert x_test.shape == (2, 32, 32, 3) and y_test.shape == (2, 1)
    assert x_train.dtype == y_train.dtype == np.uint8
    images, labels = content["data_batch_2"]
    # Batch 2 fills rows 2..3; channels move last like keras.datasets.cifar10.
    np.testing.assert_array_equal(x_train[2:4], images.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y_train[2:4, 0], labels)
    np.testing.assert_array_equal(y_test[:, 0], content["test_batch"][1])


def test_cifar_pickle_refuses_arbitrary_objects(isolated):
    base = isolated / "data" / "cifar-10-batches-py"
    make_cifar(base)
    (base / "data_batch_1").write_bytes(pickle.dumps({b"data": io.StringIO("x")}))
    with pytest.raises(
        ValueError, match=r"Corrupt or truncated CIFAR-10 batch.*Refusing"
    ):
        load_data("cifar10", cache_dir=isolated / "data")


def test_unknown_name(isolated):
    with pytest.raises(
        ValueError,
        match=r"Invalid value received for argument `name`.*"
        r"Received: name='cifar100'",
    ):
        load_data("cifar100")


def test_download_must_be_a_bool(isolated):
    with pytest.raises(
        ValueError,
        match=r"argument `download`\. Expected a bool.*Received: download='no'",
    ):
        load_data("mnist", download="no")


def test_truncated_gzip_is_rejected(isolated):
    write_idx_dir(isolated / "data", make_mnist_like())
    target = isolated / "data" / IDX_NAMES["x_train"]
    target.write_bytes(target.read_bytes()[:-20])
    with pytest.raises(
        ValueError, match=r"Corrupt or truncated idx file.*train-images"
    ):
        load_data("fashion_mnist", cache_dir=isolated / "data")


def test_short_payload_is_rejected(isolated):
    write_idx_dir(isolated / "data", make_mnist_like())
    array = np.zeros((6, 28, 28), np.uint8)
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", *array.shape)
    (isolated / "data" / IDX_NAMES["x_train"]).write_bytes(
        gzip.compress(header + array.tobytes()[:-1])
    )
    with pytest.raises(ValueError, match=r"header says shape \(6, 28, 28\)"):
        load_data("fashion_mnist", cache_dir=isolated / "data")


def test_bad_magic_is_rejected(isolated):
    write_idx_dir(isolated / "data", make_mnist_like())
    (isolated / "data" / IDX_NAMES["y_test"]).write_bytes(
        gzip.compress(b"PK\x03\x04junk")
    )
    with pytest.raises(ValueError, match="not an idx file"):
        load_data("fashion_mnist", cache_dir=isolated / "data")


def test_corrupt_npz_is_rejected(isolated):
    cache = isolated / "keras_home"
    cache.mkdir()
    (cache / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="Corrupt or truncated MNIST archive"):
        load_data("mnist")


def test_truncated_cifar_tarball_is_rejected(isolated):
    make_cifar(isolated / "src" / "cifar-10-batches-py")
    base = isolated / "data"
    base.mkdir()
    with tarfile.open(base / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(isolated / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    blob = (base / "cifar-10-python.tar.gz").read_bytes()
    (base / "cifar-10-python.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="Corrupt or truncated CIFAR-10 archive"):
        load_data("cifar10", cache_dir=base)


def test_offline_with_nothing_local_explains(isolated):
    with pytest.raises(RuntimeError) as info:
        load_data("cifar10", cache_dir=isolated / "nowhere")
    message = str(info.value)
    assert "'cifar10' was not found locally" in message
    assert str(isolated / "nowhere") in message
    assert str(isolated / "keras_home") in message
    assert "URL fetch failure" in message
    assert "cifar-10-python.tar.gz" in message


def test_download_false_does_not_touch_network(isolated, monkeypatch):
    def fail(name):
        raise AssertionError("download must not be attempted")

    monkeypatch.setattr(datasets, "_download", fail)
    with pytest.raises(
        RuntimeError, match=r"(?s)Download was disabled.*dataset-fashion-mnist"
    ):
        load_data("fashion_mnist", download=False)


def test_falls_back_to_keras_download(isolated, monkeypatch):
    data = make_mnist_like(seed=5)
    monkeypatch.setattr(datasets, "_download", lambda name: data)
    assert load_data("mnist") is data


@pytest.mark.skipif(
    not formats.has_idx_files(Path("/usr/share/datasets/fashion-mnist")),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist():
    (x_train, y_train), (x_test, y_test) = load_data("fashion_mnist", download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)
    assert keras.ops.convert_to_numpy(x_train.max()) == 255
