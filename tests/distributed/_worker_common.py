"""Pieces both distributed workers use; import only after the backend is set up."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def mlp(seed: int = 1) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )


class RecordRate(keras.callbacks.Callback):
    """Every device's learning rate after each batch (the rate that step used).

    `copies` maps a Keras variable to the list of its per-device values.
    """

    def __init__(self, copies: Callable[[keras.Variable], list[np.ndarray]]):
        super().__init__()
        self.copies = copies

    def on_train_begin(self, logs=None):
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(self.copies(self.model.optimizer.learning_rate))
