"""Shared fixture of the dataset tests: a machine with no local data and no network."""

from __future__ import annotations

import pytest

from kerasx import datasets


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No KERASX_DATA, an empty Keras home, no Debian dir and no network."""
    monkeypatch.delenv("KERASX_DATA", raising=False)
    monkeypatch.setattr(datasets, "_keras_cache_dir", lambda: tmp_path / "keras_home")
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no_debian")

    def no_network(name):
        raise Exception(f"URL fetch failure for {name}: network is unreachable")

    monkeypatch.setattr(datasets, "_download", no_network)
    return tmp_path
