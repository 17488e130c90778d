"""Offline-first loaders for the datasets of the classic Keras exercises.

`load_data` returns exactly what `keras.datasets.<name>.load_data()` returns, but
looks for the files on disk first, so examples and tests run without network:

1. the `cache_dir` argument,
2. the directories listed in the `KERASX_DATA` environment variable
   (separated by `os.pathsep`),
3. the Keras cache directory (`$KERAS_HOME/datasets`, default `~/.keras/datasets`),
4. `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`),

and only then asks `keras.datasets` to download. The files are parsed with numpy
in their published formats (gzip idx for MNIST and Fashion-MNIST, `mnist.npz` as
Keras caches it, the CIFAR-10 python pickle batches, directory or `.tar.gz`).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_IDX_UBYTE = 0x08
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TARBALL = "cifar-10-python.tar.gz"
_CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

_HOW_TO_GET = {
    "fashion_mnist": (
        "install the Debian package (`apt-get install dataset-fashion-mnist`), or "
        "copy the four *-idx?-ubyte.gz files from "
        "https://github.com/zalandoresearch/fashion-mnist into "
        "$KERASX_DATA/fashion-mnist, or run "
        "`keras.datasets.fashion_mnist.load_data()` once with network access"
    ),
    "mnist": (
        "copy `mnist.npz` (https://storage.googleapis.com/tensorflow/tf-keras-datasets"
        "/mnist.npz) into $KERASX_DATA, or the four *-idx?-ubyte.gz files into "
        "$KERASX_DATA/mnist, or run `keras.datasets.mnist.load_data()` once with "
        "network access"
    ),
    "cifar10": (
        "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into "
        "$KERASX_DATA (as is, or extracted), or run "
        "`keras.datasets.cifar10.load_data()` once with network access"
    ),
}


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

    >>> from kerasx.datasets import read_idx
    >>> labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    ... # doctest: +SKIP
    >>> labels.shape  # doctest: +SKIP
    (10000,)
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
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE:
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


def _load_idx_dir(directory: Path) -> Arrays:
    arrays = {key: read_idx(directory / fname) for key, fname in _IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"Inconsistent {split} files in {str(directory)!r}: images "
                f"{images.shape}, labels {labels.shape}."
            )
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _has_idx_files(directory: Path) -> bool:
    return all((directory / fname).is_file() for fname in _IDX_FILES.values())


def _load_mnist_npz(path: Path) -> Arrays:
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
        _parse_cifar_batch(read(name), f"{where}/{name}") for name in _CIFAR_BATCHES
    ]
    x_train = np.concatenate([images for images, _ in parts[:-1]])
    y_train = np.concatenate([labels for _, labels in parts[:-1]]).reshape(-1, 1)
    x_test, y_test = parts[-1][0], parts[-1][1].reshape(-1, 1)
    if backend.image_data_format() == "channels_last":
        x_train = x_train.transpose(0, 2, 3, 1)
        x_test = x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)


def _load_cifar_dir(directory: Path) -> Arrays:
    return _assemble_cifar(lambda name: (directory / name).read_bytes(), str(directory))


def _load_cifar_tarball(path: Path) -> Arrays:
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {
                Path(m.name).name: m
                for m in tar.getmembers()
                if m.isfile() and Path(m.name).parent.name == _CIFAR_DIR
            }
            missing = [name for name in _CIFAR_BATCHES if name not in members]
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


def _find_fashion_mnist(base: Path) -> Callable[[], Arrays] | None:
    for directory in (base / "fashion-mnist", base / "fashion_mnist", base):
        if _has_idx_files(directory):
            return lambda d=directory: _load_idx_dir(d)
    return None


def _find_mnist(base: Path) -> Callable[[], Arrays] | None:
    if (base / "mnist.npz").is_file():
        return lambda: _load_mnist_npz(base / "mnist.npz")
    if _has_idx_files(base / "mnist"):
        return lambda: _load_idx_dir(base / "mnist")
    return None


def _find_cifar10(base: Path) -> Callable[[], Arrays] | None:
    for directory in (
        base / "cifar-10-batches-py-target" / _CIFAR_DIR,  # Keras >= 3.6 cache
        base / _CIFAR_DIR,
    ):
        if all((directory / name).is_file() for name in _CIFAR_BATCHES):
            return lambda d=directory: _load_cifar_dir(d)
    if (base / _CIFAR_TARBALL).is_file():
        return lambda: _load_cifar_tarball(base / _CIFAR_TARBALL)
    return None


_FINDERS = {
    "fashion_mnist": _find_fashion_mnist,
    "mnist": _find_mnist,
    "cifar10": _find_cifar10,
}


def _keras_cache_dir() -> Path:
    # Same rule as Keras' `get_file`: $KERAS_HOME, else ~/.keras.
    keras_home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(os.path.expanduser(keras_home)) / "datasets"


def search_paths(name: str, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Lists the directories `load_data(name)` searches, in order."""
    paths = []
    if cache_dir is not None:
        paths.append(Path(cache_dir))
    for entry in os.environ.get("KERASX_DATA", "").split(os.pathsep):
        if entry:
            paths.append(Path(entry))
    paths.append(_keras_cache_dir())
    if name == "fashion_mnist":
        paths.append(DEBIAN_FASHION_MNIST_DIR)
    return paths


def _download(name: str) -> Arrays:
    import keras

    return getattr(keras.datasets, name).load_data()


def load_data(
    name: str, *, cache_dir: str | os.PathLike | None = None, download: bool = True
) -> Arrays:
    """Loads `fashion_mnist`, `mnist` or `cifar10`, from local files first.

    Searches `cache_dir`, `$KERASX_DATA`, the Keras cache directory and (for
    Fashion-MNIST) `/usr/share/datasets/fashion-mnist`, then falls back to the
    `keras.datasets` download.

    Args:
        name: One of `"fashion_mnist"`, `"mnist"`, `"cifar10"`.
        cache_dir: Optional directory searched first. It may hold the files
            directly or in a sub-directory named like Keras' cache
            (`fashion-mnist/`, `mnist.npz`, `cifar-10-batches-py/`).
        download: Whether to try `keras.datasets` when nothing is found locally.

    Returns:
        `((x_train, y_train), (x_test, y_test))` with the shapes and dtypes of
        `keras.datasets`: `uint8` images `(n, 28, 28)` and labels `(n,)` for
        (Fashion-)MNIST; `uint8` images `(n, 32, 32, 3)` (channels last) and
        labels `(n, 1)` for CIFAR-10.

    Raises:
        ValueError: unknown `name`, or a corrupt or truncated file.
        RuntimeError: the data is not on disk and could not be downloaded.

    Example:

    >>> from kerasx.datasets import load_data
    >>> (x_train, y_train), (x_test, y_test) = load_data("fashion_mnist")
    ... # doctest: +SKIP
    >>> x_train.shape, x_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))

    Reference:
        Yann LeCun's idx format: http://yann.lecun.com/exdb/mnist/ ;
        CIFAR-10 python version: https://www.cs.toronto.edu/~kriz/cifar.html
    """
    if name not in _FINDERS:
        raise ValueError(
            "Invalid value received for argument `name`. Expected one of "
            f"{sorted(_FINDERS)}. Received: name={name!r}"
        )
    searched = search_paths(name, cache_dir)
    for base in searched:
        loader = _FINDERS[name](base)
        if loader is not None:
            return loader()
    download_error: Exception | None = None
    if download:
        try:
            return _download(name)
        except Exception as e:  # Keras raises a bare Exception on fetch failure.
            download_error = e
    raise RuntimeError(_not_found_message(name, searched, download_error))


def _not_found_message(
    name: str, searched: Sequence[Path], download_error: Exception | None
) -> str:
    places = "\n".join(f"  - {p}" for p in searched)
    if download_error is None:
        tail = "Download was disabled (download=False)."
    else:
        tail = f"The keras.datasets download failed: {download_error}"
    return (
        f"Dataset {name!r} was not found locally. Searched:\n{places}\n{tail}\n"
        f"To get it offline: {_HOW_TO_GET[name]}."
    )
