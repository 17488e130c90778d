"""Shared test configuration.

The Keras backend is chosen by the ``KERAS_BACKEND`` environment variable
(``.ci/run`` runs the suite once per backend). Tests that only make sense on
some backends use ``@pytest.mark.backend("tensorflow", "jax")``.
"""

from __future__ import annotations

import gc
import os

# On JAX every new shape of every op is compiled by XLA:CPU. At LLVM
# optimisation level 0 those compiles take about a third less time
# (tests/layers, ops, uncertainty and benchmarks: 112 s instead of 164 s on two
# workers), and the suite's tensors are too small for the code's speed to
# matter. XLA's HLO passes (fusion, the kernel counts of the profile) are not
# affected; the benchmarks themselves run outside pytest at the default level.
# Set before keras imports JAX; subprocesses (docs pages, distributed workers)
# inherit it.
if os.environ.get("KERAS_BACKEND") == "jax" and (
    "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")
):
    _flags = (os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0")
    os.environ["XLA_FLAGS"] = " ".join(flag for flag in _flags if flag)

import keras
import numpy as np
import pytest

DEFAULT_SEED = 1337


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_finish(session: pytest.Session) -> None:
    # Every test module is imported now, and with it the backend: move what
    # exists into the permanent generation, so that Python's own collections
    # do not rescan TensorFlow's or JAX's import heap.
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    backend = keras.backend.backend()
    for item in items:
        marker = item.get_closest_marker("backend")
        if marker is not None and backend not in marker.args:
            wanted = ", ".join(marker.args)
            item.add_marker(
                pytest.mark.skip(
                    reason=f"backend-specific test for {wanted}; running on {backend}"
                )
            )


@pytest.fixture
def seed() -> int:
    """Seeds Python, NumPy and Keras RNGs and returns the seed used."""
    keras.utils.set_random_seed(DEFAULT_SEED)
    return DEFAULT_SEED


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    """A NumPy generator seeded with the shared test seed."""
    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    # Keras' global state only; no `gc.collect()` per test. A full collection
    # scans every live object, and the live heap grows over a run (module
    # fixtures, compiled functions): it cost 0.1 s per test early in a run and
    # 1.2 s late, 780 of 1100 s on TensorFlow. Python's own generational
    # collections still free cycles, at amortised cost.
    keras.backend.clear_session(free_memory=False)
