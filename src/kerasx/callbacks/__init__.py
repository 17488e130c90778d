"""Keras callbacks: the 1cycle scheduler and the exponential learning-rate sweep."""

from kerasx.callbacks.lr_finder import ExponentialLearningRate
from kerasx.callbacks.one_cycle import OneCycleScheduler

__all__ = ["ExponentialLearningRate", "OneCycleScheduler"]
