"""What `kerasx.datasets` refuses: inconsistent caches and unusable arguments."""

from __future__ import annotations

import pickle
import re
import tarfile

import numpy as np
import pytest
from test_datasets import (
    cifar_batch_bytes,
    make_cifar,
    make_mnist_like,
    write_idx_dir,
)

from kerasx.datasets import _formats as formats
from kerasx.datasets import load_data, read_idx, search_paths


def _write_npz(path, x_train, y_train, x_test=None, y_test=None):
    (default_x, default_y) = make_mnist_like(n_train=4, n_test=4)[1]
    np.savez(
        path,
        x_train=x_train,
        y_train=y_train,
        x_test=default_x if x_test is None else x_test,
        y_test=default_y if y_test is None else y_test,
    )


def test_npz_with_more_images_than_labels(isolated):
    (isolated / "data").mkdir()
    path = isolated / "data" / "mnist.npz"
    _write_npz(path, np.zeros((5, 28, 28), np.uint8), np.zeros(3, np.uint8))
    message = (
        f"Corrupt train data in '{path}': images of shape (5, 28, 28) but "
        "labels of shape (3,); expected 3-D images and one label per image. "
        "Delete it and download it again."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_data("mnist", cache_dir=isolated / "data")


def test_npz_with_labels_outside_the_ten_classes(isolated):
    (isolated / "data").mkdir()
    path = isolated / "data" / "mnist.npz"
    labels = np.array([0, 3, 12, 1], np.uint8)
    _write_npz(path, np.zeros((4, 28, 28), np.uint8), labels)
    message = (
        f"Corrupt train labels in '{path}' (dtype uint8, values in [0, 12]): "
        "expected integer class indices in [0, 10)."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_data("mnist", cache_dir=isolated / "data")


def test_npz_with_float_labels(isolated):
    (isolated / "data").mkdir()
    path = isolated / "data" / "mnist.npz"
    _, (x_test, y_test) = make_mnist_like()
    x_train, y_train = np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8)
    _write_npz(path, x_train, y_train, x_test, y_test.astype(np.float32) + 0.5)
    with pytest.raises(
        ValueError,
        match=re.escape(f"Corrupt test labels in '{path}' (dtype float32, values in"),
    ):
        load_data("mnist", cache_dir=isolated / "data")


def test_idx_labels_outside_the_ten_classes(isolated):
    (x_train, y_train), test = make_mnist_like()
    y_train[2] = 200
    directory = isolated / "data" / "fashion-mnist"
    write_idx_dir(directory, ((x_train, y_train), test))
    names = formats.IDX_FILES
    message = (
        f"Corrupt train labels in '{directory / names['x_train']}' and "
        f"'{directory / names['y_train']}' (dtype uint8, values in [0, 200])"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_data("fashion_mnist", cache_dir=isolated / "data")


def test_cifar_batch_of_the_wrong_width_is_not_recut(isolated):
    base = isolated / "data" / "cifar-10-batches-py"
    make_cifar(base)
    # Two rows of two images each: a reshape to (-1, 3, 32, 32) would yield 4.
    wide = np.zeros((2, 2, 3, 32, 32), np.uint8).reshape(2, -1)
    batch = {b"data": wide, b"labels": [0, 1, 2, 3]}
    (base / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    message = (
        f"Corrupt CIFAR-10 batch '{base / 'data_batch_3'}': its data is a uint8 "
        "array of shape (2, 6144), expected a uint8 array of shape (n, 3072)."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_data("cifar10", cache_dir=isolated / "data")


def test_cifar_batch_of_wider_integers_is_not_wrapped(isolated):
    base = isolated / "data" / "cifar-10-batches-py"
    make_cifar(base)
    data = np.full((2, 3072), 300, np.int64)  # uint8 would wrap 300 to 44.
    batch = {b"data": data, b"labels": [0, 1]}
    (base / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(
        ValueError, match=re.escape("its data is a int64 array of shape (2, 3072)")
    ):
        load_data("cifar10", cache_dir=isolated / "data")


def test_cifar_labels_must_match_images_and_classes(isolated):
    base = isolated / "data"
    make_cifar(isolated / "src" / "cifar-10-batches-py")
    batch = isolated / "src" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(cifar_batch_bytes(np.zeros((2, 3, 32, 32), np.uint8), [0, 10]))
    base.mkdir()
    with tarfile.open(base / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(isolated / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    source = f"{base / 'cifar-10-python.tar.gz'}/data_batch_1"
    message = (
        f"Corrupt CIFAR-10 batch labels in '{source}' (dtype int64, values in "
        "[0, 10]): expected integer class indices in [0, 10)."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_data("cifar10", cache_dir=base)


@pytest.mark.parametrize("cache_dir", [123, b"/tmp", "", ["/tmp"]])
def test_cache_dir_must_be_a_path(isolated, cache_dir):
    message = (
        "Invalid value received for argument `cache_dir`. Expected None or the "
        f"path (str or os.PathLike) of a directory. Received: cache_dir={cache_dir!r}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_data("mnist", cache_dir=cache_dir)


def test_cache_dir_must_not_be_a_file(isolated):
    path = isolated / "mnist.npz"
    _write_npz(path, np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(
        ValueError, match=re.escape(f"of a directory. Received: cache_dir={path!r}")
    ):
        load_data("mnist", cache_dir=path)


def test_search_paths_checks_its_arguments(isolated):
    with pytest.raises(ValueError, match=r"argument `name`. Expected one of"):
        search_paths("cifar100")
    with pytest.raises(ValueError, match=r"Received: cache_dir=123"):
        search_paths("mnist", cache_dir=123)


def test_read_idx_arguments(tmp_path):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Invalid value received for argument `path`. Expected a str or "
            "os.PathLike. Received: path=3"
        ),
    ):
        read_idx(3)
    missing = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(FileNotFoundError, match=re.escape(f"No idx file '{missing}'.")):
        read_idx(missing)


def test_read_idx_huge_header_is_refused_without_overflow(tmp_path):
    # 2**32 - 1 per axis: the element count overflows int64 in np.prod.
    header = bytes([0, 0, 0x08, 3]) + (b"\xff" * 12)
    (tmp_path / "a").write_bytes(header + b"\x00" * 4)
    with pytest.raises(ValueError, match=r"header says shape \(4294967295, "):
        read_idx(tmp_path / "a")
