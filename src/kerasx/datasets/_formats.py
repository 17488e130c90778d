"""Parsers for the published dataset file formats (idx, mnist.npz, CIFAR-10 pickles).

Used by `kerasx.datasets`; everything is parsed with NumPy, and every parser turns a
truncated or corrupt file into a `ValueError` that names the file.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
IDX_UBYTE = 0x08
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TARBALL = "cifar-10-python.tar.gz"
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads a gzip-compressed (or plain) idx file of unsigned bytes.

    The idx format is a big-endian header (two zero bytes, a type byte, the number
    of dimensions, then one uint32 per dimension) followed by the raw data.

    Args:
        path: Path to a `.gz` or uncompressed idx file.

    Returns:
        A `uint8` array with the shape stored in the header.

    Raises:
        ValueError: if the file is truncated, not gzip, or not an idx file.

    Example:

    ```python
    >>> from kerasx.datasets import read_idx
    >>> labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    ... # doctest: +SKIP
    >>> labels.shape  # doctest: +SKIP
    (10000,)

    ```
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(
            f"Corrupt or truncated idx file {str(path)!r}: {e}. Delete it and "
            "download it again."
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE:
        raise ValueError(
            f"{str(path)!r} is not an idx file of unsigned bytes (bad magic number "
            f"{raw[:4].hex() or 'empty'})."
        )
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"Truncated idx file {str(path)!r}: incomplete header.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise ValueError(
            f"Truncated or corrupt idx file {str(path)!r}: header says shape "
            f"{shape} ({expected} bytes) but the file holds {len(raw)} bytes."
        )
    return np.frombuffer(raw, np.uint8, offset=header_size).reshape(shape).copy()


def load_idx_dir(directory: Path) -> Arrays:
    arrays = {key: read_idx(directory / fname) for key, fname in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"Inconsistent {split} files in {str(directory)!r}: images "
                f"{images.shape}, labels {labels.shape}."
            )
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def has_idx_files(directory: Path) -> bool:
    return all((directory / fname).is_file() for fname in IDX_FILES.values())


def load_mnist_npz(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        zlib.error,
        zipfile.BadZipFile,
    ) as e:
        raise ValueError(
            f"Corrupt or truncated MNIST archive {str(path)!r}: {e}. Delete it and "
            "download it again."
        ) from e
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, never arbitrary objects."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Python 2 pickles of byte strings go through codecs.encode.
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Refusing to load {module}.{name}.")


def _parse_cifar_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
        images = images.reshape(-1, 3, 32, 32)
    except Exception as e:
        raise ValueError(
            f"Corrupt or truncated CIFAR-10 batch {source!r}: {e}. Delete it and "
            "download the dataset again."
        ) from e
    if len(images) != len(labels):
        raise ValueError(
            f"Corrupt CIFAR-10 batch {source!r}: {len(images)} images but "
            f"{len(labels)} labels."
        )
    return images, labels


def _assemble_cifar(read: Callable[[str], bytes], where: str) -> Arrays:
    from keras import backend

    parts = [
        _parse_cifar_batch(read(name), f"{where}/{name}") for name in CIFAR_BATCHES
    ]
    x_train = np.concatenate([images for images, _ in parts[:-1]])
    y_train = np.concatenate([labels for _, labels in parts[:-1]]).reshape(-1, 1)
    x_test, y_test = parts[-1][0], parts[-1][1].reshape(-1, 1)
    if backend.image_data_format() == "channels_last":
        x_train = x_train.transpose(0, 2, 3, 1)
        x_test = x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)


def load_cifar_dir(directory: Path) -> Arrays:
    return _assemble_cifar(lambda name: (directory / name).read_bytes(), str(directory))


def load_cifar_tarball(path: Path) -> Arrays:
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {
                Path(m.name).name: m
                for m in tar.getmembers()
                if m.isfile() and Path(m.name).parent.name == CIFAR_DIR
            }
            missing = [name for name in CIFAR_BATCHES if name not in members]
            if missing:
                raise ValueError(f"missing members {missing}")
            return _assemble_cifar(
                lambda name: tar.extractfile(members[name]).read(), str(path)
            )
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ValueError(
            f"Corrupt or truncated CIFAR-10 archive {str(path)!r}: {e}. Delete it "
            "and download it again."
        ) from e
