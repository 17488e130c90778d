"""Parsers for the published dataset file formats (idx, mnist.npz, CIFAR-10 pickles).

Used by `kerasx.datasets`; everything is parsed with NumPy, and every parser turns a
truncated or corrupt file into a `ValueError` that names the file.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kerasx import _checks

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
CIFAR_IMAGE_BYTES = 3 * 32 * 32
#: MNIST, Fashion-MNIST and CIFAR-10 all have 10 classes, labelled 0..9.
N_CLASSES = 10


def check_split(
    source: str, split: str, images: np.ndarray, labels: np.ndarray, image_ndim: int
) -> None:
    """Refuses images and labels that cannot be one split of a dataset.

    `source` names the file(s), quoted; `split` is e.g. `"train"`.

    One label per image, images of rank `image_ndim`, labels a vector of
    integer class indices in `[0, 10)`: a file that breaks these is corrupt
    (or not the dataset), and training on it would fail far from the cause.
    """
    if (
        images.ndim != image_ndim
        or labels.ndim != 1
        or images.shape[0] != labels.shape[0]
    ):
        raise ValueError(
            f"Corrupt {split} data in {source}: images of shape {images.shape} "
            f"but labels of shape {labels.shape}; expected {image_ndim}-D images "
            "and one label per image. Delete it and download it again."
        )
    if not np.issubdtype(labels.dtype, np.integer) or (
        labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES)
    ):
        values = f"dtype {labels.dtype}"
        if labels.size and np.issubdtype(labels.dtype, np.number):
            values += f", values in [{labels.min()}, {labels.max()}]"
        raise ValueError(
            f"Corrupt {split} labels in {source} ({values}): expected integer "
            f"class indices in [0, {N_CLASSES}). Delete it and download it again."
        )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads a gzip-compressed (or plain) idx file of unsigned bytes.

    The idx format is a big-endian header (two zero bytes, a type byte, the number
    of dimensions, then one uint32 per dimension) followed by the raw data.

    Args:
        path: Path to a `.gz` or uncompressed idx file.

    Returns:
        A `uint8` array with the shape stored in the header.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If `path` is not a str or `os.PathLike`, or the file is
            truncated, not gzip (for a `.gz` name), or not an idx file of
            unsigned bytes.

    Example:

    ```python
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> from kerasx.datasets import read_idx
    >>> # Header: two zero bytes, type 8 (unsigned byte), rank 2, shape 2 x 3.
    >>> header = bytes([0, 0, 8, 2]) + np.array([2, 3], ">u4").tobytes()
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = os.path.join(directory, "tiny-idx2-ubyte")  # or a .gz file
    ...     with open(path, "wb") as file:
    ...         _ = file.write(header + bytes(range(6)))
    ...     array = read_idx(path)
    >>> array.tolist(), array.dtype
    ([[0, 1, 2], [3, 4, 5]], dtype('uint8'))

    ```
    """
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise _checks.invalid("path", "a str or os.PathLike", path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No idx file {str(path)!r}.")
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
    expected = header_size + math.prod(shape)  # Exact: np.prod would wrap.
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
        names = [str(directory / IDX_FILES[f"{key}_{split}"]) for key in "xy"]
        source = " and ".join(repr(name) for name in names)
        check_split(source, split, images, labels, image_ndim=3)
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
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        check_split(repr(str(path)), split, images, labels, image_ndim=3)
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
        images = batch[b"data"]
        labels = np.asarray(batch[b"labels"])
    except Exception as e:
        raise ValueError(
            f"Corrupt or truncated CIFAR-10 batch {source!r}: {e}. Delete it and "
            "download the dataset again."
        ) from e
    # The published batches hold a uint8 (n, 3072) array: a cast would wrap
    # other values and a reshape would silently re-cut other widths.
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != CIFAR_IMAGE_BYTES
    ):
        found = (
            f"{images.dtype} array of shape {images.shape}"
            if isinstance(images, np.ndarray)
            else type(images).__name__
        )
        raise ValueError(
            f"Corrupt CIFAR-10 batch {source!r}: its data is a {found}, expected a "
            f"uint8 array of shape (n, {CIFAR_IMAGE_BYTES}). Delete it and "
            "download the dataset again."
        )
    check_split(repr(source), "CIFAR-10 batch", images, labels, image_ndim=2)
    return images.reshape(-1, 3, 32, 32), labels.astype(np.uint8)


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
