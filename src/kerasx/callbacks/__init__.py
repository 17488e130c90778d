"""Keras callbacks: 1cycle, the exponential LR sweep, diagnostics and averaging.

`OneCycleScheduler` and `ExponentialLearningRate` set the rate of every step;
`GradientStats` and `ActivationStats` record per-layer statistics on a probe
batch; `StochasticWeightAveraging` and `SnapshotEnsemble` average or save the
weights a run passes through.
"""

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
