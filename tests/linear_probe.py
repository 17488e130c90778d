"""The bias-free linear probe that reads applied learning rates off weight deltas.

With plain SGD, a `Dense(1, use_bias=False)` kernel and the loss
`mean(y_pred) + c`, one update moves the kernel by `-rate * mean(x_batch)`;
inputs that are multiples of 0.5 make that exact in float16 and bfloat16.
Used by the mixed-precision and gradient-accumulation tests of the LR tools.
"""

from __future__ import annotations

import keras
import numpy as np


def half_integer_data(batches: int, batch: int, width: int = 2, seed: int = 0):
    """`batches * batch` rows of values in {0.5, 1.0, 1.5}, and zero targets."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 4, size=(batches * batch, width)) * 0.5
    return x.astype("float32"), np.zeros((batches * batch, 1), "float32")


class KernelRecorder(keras.callbacks.Callback):
    """The first layer's kernel before training and after every batch (float64)."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_train_begin(self, logs=None):
        self.kernels = [keras.ops.convert_to_numpy(self.model.layers[0].kernel)]

    def on_train_batch_end(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        kernel = keras.ops.convert_to_numpy(self.model.layers[0].kernel)
        self.kernels.append(np.array(kernel, "float64"))


def fit_recording_kernels(model, callback, x, y, batch_size, epochs=1):
    """`fit` in order (no shuffling) with `callback`; the kernel after each batch."""
    recorder = KernelRecorder()
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        callbacks=[callback, recorder],
        verbose=0,
    )
    return recorder.kernels
