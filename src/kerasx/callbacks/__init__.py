"""Keras callbacks: the 1cycle scheduler and the exponential learning-rate sweep."""

from kerasx.callbacks.exponential_lr import ExponentialLearningRate
from kerasx.callbacks.one_cycle import OneCycleScheduler

__all__ = ["ExponentialLearningRate", "OneCycleScheduler"]
