"""The compiled part of `mc_predict`: many MC samples per call, reduced in-graph.

A `_Sampler` wraps the user's model. One `predict_on_batch` call tiles a chunk
of `rows` inputs `samples_per_call` times along the batch axis, runs the model
once in inference mode (MC layers draw a fresh mask for every row and sample,
keyed by the row's index in the data, so every tile is an independent sample
while BatchNormalization uses its moving statistics) and returns per-row
sufficient statistics instead of the samples:
the shifted mean and sum of squared deviations (merged on the host with Chan's
parallel Welford update), the summed entropy and the argmax votes. Memory is
therefore `O(rows * samples_per_call)` per call, whatever `n_samples` is.

The statistics are reduced in float64: a float32 sum over thousands of
samples drifts (TensorFlow's CPU reduction over the sample axis, measured: 1e-6
relative after 2,000 samples, 1e-4 after 200,000; JAX's summed entropies, 1e-5
after 2,000). Where the backend has no float64 (JAX without `jax_enable_x64`,
Apple's MPS device) the sampler returns the float32 samples instead and the
host reduces them in float64 with NumPy (`_stats.from_samples`), so every
backend gives the float64 statistics of the same samples.
"""

from __future__ import annotations

import collections
import math
import warnings

import keras
from keras import ops

from kerasx import _keras_internals
from kerasx.layers.mc_dropout import MC_TO_KERAS, row_noise
from kerasx.uncertainty import _stats

#: Activations allowed per compiled call (bytes); a CPU-friendly default that
#: keeps the tiled batch in cache-sized pieces without many tiny calls.
DEFAULT_MEMORY_BUDGET = 64 * 2**20

# Compiled samplers are expensive to trace (~0.1-1 s) and cheap to reuse, so
# the last few of each model are kept. A sampler must reference its model (its
# compiled function reads the model's variables), so the samplers are stored on
# the model, not in a module-level table: nothing outside the model keeps it
# alive, they are collected with it, and a model created later at a recycled
# `id` cannot be served another model's sampler.
_CACHE_SIZE = 4
_CACHE_ATTRIBUTE = "_kerasx_mc_samplers"


class _SamplerCache:
    """The last `_CACHE_SIZE` samplers of one model, by configuration.

    A plain object on purpose: Keras' saving walks a model's attributes and
    descends into Keras objects and built-in containers (a dict of samplers
    would add entries to the model's `.keras` file), not into other objects.
    """

    def __init__(self):
        self.samplers = collections.OrderedDict()


class _Sampler(keras.Model):
    """Maps `(inputs, counters)` of a chunk to per-row Monte Carlo statistics.

    `counters` (int32, one `(seed, row index, first sample)` triple per row)
    keys the MC layers' noise (`kerasx.layers.mc_dropout.row_noise`), so a
    row's samples do not depend on the chunk it is in. Returns one dict of
    statistics per model output, in `keras.tree.flatten` order.
    """

    def __init__(self, model, samples_per_call, classification, return_samples):
        super().__init__(name="kerasx_mc_sampler")
        self.inner = model
        self.samples_per_call = samples_per_call
        self.classification = classification
        self.return_samples = return_samples
        self.reduce_in_graph = has_float64()

    def call(self, inputs):
        x, counters = inputs
        k = self.samples_per_call
        tiled = keras.tree.map_structure(
            lambda t: ops.tile(t, [k] + [1] * (len(t.shape) - 1)), x
        )
        with row_noise(counters, k):
            outputs = self.inner(tiled, training=False)
        return [self._statistics(output) for output in keras.tree.flatten(outputs)]

    def _statistics(self, output):
        k = self.samples_per_call
        output = ops.cast(output, "float32")
        float32_samples = ops.reshape(output, (k, -1, *output.shape[1:]))
        if not self.reduce_in_graph:
            # Row-first, like every other output: a distribution strategy splits
            # the rows over replicas and concatenates the outputs on axis 0.
            return {"samples": ops.moveaxis(float32_samples, 0, 1)}
        samples = ops.cast(float32_samples, "float64")
        value_axes = tuple(range(2, len(samples.shape)))
        # Deviations from the first sample: exact zeros (mean equal to every
        # sample, M2 = 0) for a deterministic model, and a stable M2 otherwise.
        first = samples[0]
        shifted = samples - first
        mean_shift = ops.mean(shifted, axis=0)
        finite = ops.all(ops.isfinite(samples), axis=(0, *value_axes))
        stats = {
            "mean": first + mean_shift,
            "m2": ops.sum(ops.square(shifted - mean_shift), axis=0),
            "finite": ops.cast(finite, "float32"),
        }
        if self.classification:
            probs = samples
            if samples.shape[-1] == 1:
                probs = ops.concatenate([1.0 - samples, samples], axis=-1)
            log_probs = ops.log(ops.maximum(probs, _stats.LOG_FLOOR))
            entropy = -ops.sum(probs * log_probs, axis=-1)
            stats["entropy_sum"] = ops.sum(entropy, axis=0)
            votes = ops.one_hot(ops.argmax(probs, axis=-1), probs.shape[-1])
            stats["votes"] = ops.sum(votes, axis=0)
            # Per row, over samples (and the leading axes of a sequence output).
            row_axes = tuple(range(2, len(probs.shape)))
            stats["minimum"] = ops.min(probs, axis=(0, *row_axes))
            stats["maximum"] = ops.max(probs, axis=(0, *row_axes))
            sum_error = ops.abs(ops.sum(probs, axis=-1) - 1.0)
            stats["sum_error"] = ops.max(sum_error, axis=(0, *row_axes[:-1]))
        if self.return_samples:
            stats["samples"] = ops.moveaxis(float32_samples, 0, 1)
        return stats


def has_float64():
    """Whether the backend computes in float64 (not JAX by default, not MPS)."""
    with warnings.catch_warnings():
        # JAX warns, and computes in float32, when asked for float64 without x64.
        warnings.simplefilter("ignore", UserWarning)
        try:
            probe = ops.cast(ops.ones(()), "float64")
        except (TypeError, RuntimeError):  # torch on MPS refuses float64.
            return False
    return keras.backend.standardize_dtype(probe.dtype) == "float64"


def get_sampler(model, samples_per_call, classification, return_samples):
    """A `_Sampler` for this model and configuration, reused while `model` lives.

    The model's last `_CACHE_SIZE` samplers are kept in a `_SamplerCache` set
    with `object.__setattr__`, so that Keras does not track them as sublayers:
    they are not in `model.layers`, its weights or its saved files.
    """
    holder = vars(model).get(_CACHE_ATTRIBUTE)
    if holder is None:
        holder = _SamplerCache()
        object.__setattr__(model, _CACHE_ATTRIBUTE, holder)
    cache = holder.samplers
    key = (samples_per_call, classification, return_samples)
    sampler = cache.get(key)
    if sampler is not None:
        cache.move_to_end(key)
        return sampler
    sampler = _Sampler(model, samples_per_call, classification, return_samples)
    cache[key] = sampler
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return sampler


def stochastic_layers(model):
    """The MC layers of `model` (nested ones included) that inject noise."""
    layers = []
    for layer in _keras_internals.nested_layers(model):
        if type(layer) in MC_TO_KERAS:
            strength = getattr(layer, "rate", getattr(layer, "stddev", 0.0))
            if strength > 0:
                layers.append(layer)
    return layers


def bytes_per_row(model, leaves):
    """Rough float32 activation footprint of one input row through `model`."""
    elements = sum(math.prod(leaf.shape[1:]) for leaf in leaves)
    for layer in _keras_internals.nested_layers(model):
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):
            continue  # Layer without a unique functional output.
        for tensor in outputs:
            elements += math.prod(d or 1 for d in tensor.shape[1:])
    # x2: an op's input and output are alive at the same time.
    return 2 * 4 * max(elements, 1)


def plan_chunks(n_rows, n_samples, batch_size, row_bytes, budget):
    """Returns `(rows per call, samples per call)` within the memory budget.

    `n_rows` is the number of rows available at once (a whole array, or one
    batch of a dataset).
    """
    rows_budget = max(1, budget // row_bytes)
    if batch_size is None:
        samples_per_call = min(n_samples, rows_budget)
        rows = min(n_rows, max(1, rows_budget // samples_per_call))
        return rows, samples_per_call
    rows = min(n_rows, batch_size)
    return rows, max(1, min(n_samples, rows_budget // rows))
