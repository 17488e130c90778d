"""Copies of Keras variables that restore bit-exactly (the one save/restore helper).

Used wherever kerasx must leave user state as it found it: the LR finder (every
model and optimizer variable), `mc_predict` (seed-generator states) and
`saving.load` (weights, when a load into an existing model fails).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np


class VariableSnapshot:
    """The values of `variables` now; `restore()` assigns them back.

    Values are copied to host NumPy arrays through `keras.ops.convert_to_numpy`
    of the variable itself, which works on every backend (also for torch
    variables that require grad, and for mirrored variables under a
    `tf.distribute` strategy, where `variable.value` of a scalar fails).
    """

    def __init__(self, variables: Iterable[keras.Variable]) -> None:
        self.variables = list(variables)
        self.values = [
            np.array(keras.ops.convert_to_numpy(variable), copy=True)
            for variable in self.variables
        ]

    def restore(self) -> None:
        for variable, value in zip(self.variables, self.values, strict=True):
            variable.assign(value)
