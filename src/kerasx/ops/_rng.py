"""The backend's own global RNG state, which some Keras random ops draw from.

Keras' torch backend runs an unseeded `Dropout` (one whose `seed` is None) as
`torch.nn.functional.dropout`, which draws from torch's global generator
rather than from a Keras `SeedGenerator`; a probe forward pass in training
mode would advance it. `native_state()` captures that state and returns a
function that puts it back. TensorFlow and JAX run every Keras random op from
`SeedGenerator` states, so there is nothing to capture on them.
"""

from __future__ import annotations

from collections.abc import Callable

import keras


def _torch() -> Callable[[], None]:
    import torch

    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore() -> None:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)

    return restore


def native_state() -> Callable[[], None]:
    """Captures the backend's global RNG state; returns its restore function."""
    if keras.backend.backend() == "torch":
        return _torch()
    return lambda: None
