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

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from kerasx import _checks
from kerasx.datasets._formats import (
    CIFAR_BATCHES,
    CIFAR_DIR,
    CIFAR_TARBALL,
    Arrays,
    has_idx_files,
    load_cifar_dir,
    load_cifar_tarball,
    load_idx_dir,
    load_mnist_npz,
    read_idx,
)

__all__ = ["load_data", "read_idx", "search_paths"]

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
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


def _find_fashion_mnist(base: Path) -> Callable[[], Arrays] | None:
    for directory in (base / "fashion-mnist", base / "fashion_mnist", base):
        if has_idx_files(directory):
            return lambda d=directory: load_idx_dir(d)
    return None


def _find_mnist(base: Path) -> Callable[[], Arrays] | None:
    if (base / "mnist.npz").is_file():
        return lambda: load_mnist_npz(base / "mnist.npz")
    if has_idx_files(base / "mnist"):
        return lambda: load_idx_dir(base / "mnist")
    return None


def _find_cifar10(base: Path) -> Callable[[], Arrays] | None:
    for directory in (
        base / "cifar-10-batches-py-target" / CIFAR_DIR,  # Keras >= 3.6 cache
        base / CIFAR_DIR,
    ):
        if all((directory / name).is_file() for name in CIFAR_BATCHES):
            return lambda d=directory: load_cifar_dir(d)
    if (base / CIFAR_TARBALL).is_file():
        return lambda: load_cifar_tarball(base / CIFAR_TARBALL)
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


def _cache_dir(value: object) -> Path:
    """`cache_dir` as a `Path`: a directory path, never a file's."""
    expected = "None or the path (str or os.PathLike) of a directory"
    if not isinstance(value, (str, os.PathLike)):
        raise _checks.invalid("cache_dir", expected, value)
    raw = os.fspath(value)
    # "" would silently mean the current directory; a file (e.g. the
    # `mnist.npz` itself) would be skipped and the dataset downloaded.
    if not isinstance(raw, str) or not raw or Path(raw).is_file():
        raise _checks.invalid("cache_dir", expected, value)
    return Path(raw)


def search_paths(name: str, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Lists the directories `load_data(name)` searches, in order.

    The order is `cache_dir`, each entry of the `KERASX_DATA` environment
    variable (separated by `os.pathsep`), the Keras cache directory
    (`$KERAS_HOME/datasets`, default `~/.keras/datasets`) and, for
    Fashion-MNIST, `/usr/share/datasets/fashion-mnist` (Debian package
    `dataset-fashion-mnist`). The directories need not exist.

    Args:
        name: One of `"cifar10"`, `"fashion_mnist"`, `"mnist"`.
        cache_dir: Optional directory searched first (a `str` or
            `os.PathLike`; a path to a file is refused).

    Returns:
        A list of `pathlib.Path`s, first searched first.

    Raises:
        ValueError: If `name` is not one of the three datasets, or
            `cache_dir` is not None or the path of a directory (an empty
            string or an existing file is refused).

    Example:

    ```python
    >>> from kerasx.datasets import search_paths
    >>> paths = search_paths("fashion_mnist", cache_dir="my-datasets")
    >>> paths[0].as_posix(), paths[-1].as_posix()
    ('my-datasets', '/usr/share/datasets/fashion-mnist')
    >>> search_paths("mnist")[-1].name  # the Keras cache, `~/.keras/datasets`
    'datasets'

    ```
    """
    _checks.choice("name", name, sorted(_FINDERS))
    paths = []
    if cache_dir is not None:
        paths.append(_cache_dir(cache_dir))
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
        cache_dir: Optional directory searched first (a `str` or
            `os.PathLike`; a path to a file is refused). It may hold the files
            directly or in a sub-directory named like Keras' cache
            (`fashion-mnist/`, `mnist.npz`, `cifar-10-batches-py/`).
        download: Whether to try `keras.datasets` when nothing is found locally.

    Returns:
        `((x_train, y_train), (x_test, y_test))` with the shapes and dtypes of
        `keras.datasets`: `uint8` images `(n, 28, 28)` and labels `(n,)` for
        (Fashion-)MNIST; `uint8` images `(n, 32, 32, 3)` (channels last) and
        labels `(n, 1)` for CIFAR-10.

    Raises:
        ValueError: If `name` is not one of the three datasets, `cache_dir`
            is not None or the path of a directory, or `download` is not a
            bool; if a file found is corrupt or truncated (also one whose
            images and labels do not pair up, or whose labels are not
            classes 0..9).
        RuntimeError: If the data is not on disk and could not be
            downloaded (or `download=False`); the message lists the
            directories searched and how to get the files offline.

    Example:

    A directory holding the four gzip idx files of Fashion-MNIST (here a
    tiny stand-in with 6 training and 2 test images, written with NumPy) is
    read without network:

    ```python
    >>> import gzip
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> from kerasx.datasets import load_data
    >>> def write_idx(path, array):  # header: 0, 0, type 8 (ubyte), rank, shape
    ...     shape = np.array(array.shape, ">u4").tobytes()
    ...     header = bytes([0, 0, 8, array.ndim]) + shape
    ...     with gzip.open(path, "wb") as file:
    ...         file.write(header + array.astype(np.uint8).tobytes())
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     for prefix, n in (("train", 6), ("t10k", 2)):
    ...         images = os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz")
    ...         labels = os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz")
    ...         write_idx(images, np.zeros((n, 28, 28)))
    ...         write_idx(labels, np.arange(n))
    ...     (x_train, y_train), (x_test, y_test) = load_data(
    ...         "fashion_mnist", cache_dir=directory, download=False)
    >>> x_train.shape, x_train.dtype, y_train.tolist(), x_test.shape
    ((6, 28, 28), dtype('uint8'), [0, 1, 2, 3, 4, 5], (2, 28, 28))

    ```

    The real dataset needs its files on disk (or a download), so these
    lines are not run by the documentation tests:

    ```python
    >>> (x_train, y_train), (x_test, y_test) = load_data("fashion_mnist")
    ... # doctest: +SKIP
    >>> x_train.shape, x_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))

    ```

    Reference:
        Yann LeCun's idx format: http://yann.lecun.com/exdb/mnist/ ;
        CIFAR-10 python version: https://www.cs.toronto.edu/~kriz/cifar.html
    """
    _checks.choice("name", name, sorted(_FINDERS))
    _checks.boolean("download", download)
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
