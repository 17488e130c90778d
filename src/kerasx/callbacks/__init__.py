"""Keras callbacks: the 1cycle scheduler and the exponential learning-rate sweep."""

from kerasx.callbacks.activation_stats import ActivationStats
from kerasx.callbacks.exponential_lr import ExponentialLearningRate
from kerasx.callbacks.gradient_stats import GradientStats
from kerasx.callbacks.one_cycle import OneCycleScheduler
from kerasx.callbacks.snapshot import SnapshotEnsemble
from kerasx.callbacks.swa import StochasticWeightAveraging

__all__ = [
    "ActivationStats",
    "ExponentialLearningRate",
    "GradientStats",
    "OneCycleScheduler",
    "SnapshotEnsemble",
    "StochasticWeightAveraging",
]
