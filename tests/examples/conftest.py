"""Fixtures for the example tests: a tiny learnable dataset in the real idx format.

Each example's `main()` runs on it with a few hundred images and one or two
epochs, so the whole module takes seconds per example, not minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from example_helpers import synthetic_images, write_idx


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `KERASX_DATA` directory holding a synthetic `fashion-mnist/` idx dataset."""
    root = tmp_path_factory.mktemp("kerasx_data")
    directory = root / "fashion-mnist"
    directory.mkdir()
    rng = np.random.default_rng(0)
    x_train, y_train = synthetic_images(1400, rng)
    x_test, y_test = synthetic_images(200, rng)
    write_idx(directory / "train-images-idx3-ubyte.gz", x_train)
    write_idx(directory / "train-labels-idx1-ubyte.gz", y_train)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", x_test)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", y_test)
    return root


@pytest.fixture
def kerasx_data(synthetic_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Points `kerasx.datasets.load_data` at the synthetic dataset."""
    monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
    return synthetic_data_dir
