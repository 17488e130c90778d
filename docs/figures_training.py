"""Draws the figures of the LR finder and 1cycle pages.

    KERAS_BACKEND=jax python docs/figures_training.py

- `img/lr_finder_sweep.png`: `find_learning_rate` on a small seeded MLP
  (4 x Dense(100), Nadam) over 8 000 Fashion-MNIST training images (read
  offline with `kerasx.datasets.load_data`), drawn with `plot_lr_vs_loss`.
- `img/schedules_one_cycle.png`: `OneCycle` rate and momentum over 1 000 steps.
- `img/schedules_one_cycle_scheduler.png`: `OneCycleScheduler`'s rate and
  momentum, read back from the optimizer after each step of a real `fit`.

PNGs go to `docs/img/` at 160 dpi; the numbers the captions quote are printed.
"""

from __future__ import annotations

from pathlib import Path

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from kerasx.callbacks import OneCycleScheduler
from kerasx.datasets import load_data
from kerasx.lr_finder import find_learning_rate, plot_lr_vs_loss
from kerasx.schedules import OneCycle

IMG = Path(__file__).resolve().parent / "img"
DPI = 160
SEED = 42


def lr_finder_sweep() -> None:
    keras.utils.set_random_seed(SEED)
    (x_train, y_train), _ = load_data("fashion_mnist")
    x = x_train[:8000].reshape(-1, 784).astype("float32") / 255.0
    y = y_train[:8000]
    model = keras.Sequential([keras.Input((784,))])
    for _ in range(4):
        model.add(keras.layers.Dense(100, activation="elu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(keras.optimizers.Nadam(1e-3), "sparse_categorical_crossentropy")
    result = find_learning_rate(model, x, y, batch_size=32, min_rate=1e-5)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_lr_vs_loss(result, ax=ax)
    ax.set_title("4 x Dense(100), Nadam, 8 000 Fashion-MNIST images, batch 32")
    fig.tight_layout()
    fig.savefig(IMG / "lr_finder_sweep.png", dpi=DPI)
    plt.close(fig)
    start, stop = result.suggestion_range
    print(
        "lr_finder_sweep:",
        f"{len(result.rates)} of {result.num_steps} steps,",
        f"stop_reason={result.stop_reason!r}, rules on points [{start}, {stop}),",
        {name: f"{rate:.3g}" for name, rate in result.suggestions.items()},
    )


def one_cycle_curves() -> None:
    steps = np.arange(1000)
    variants = {
        "cos (default)": OneCycle(0.1, 1000),
        "linear": OneCycle(0.1, 1000, anneal_strategy="linear"),
        "three_phase=True": OneCycle(0.1, 1000, three_phase=True),
    }
    fig, (rate_ax, momentum_ax) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for label, schedule in variants.items():
        rate_ax.plot(steps, keras.ops.convert_to_numpy(schedule(steps)), label=label)
        momentum_ax.plot(
            steps, keras.ops.convert_to_numpy(schedule.momentum(steps)), label=label
        )
    rate_ax.set_ylabel("learning rate")
    rate_ax.set_title("OneCycle(0.1, total_steps=1000)")
    rate_ax.legend()
    momentum_ax.set_ylabel("momentum (beta_1)")
    momentum_ax.set_xlabel("optimizer step")
    fig.tight_layout()
    fig.savefig(IMG / "schedules_one_cycle.png", dpi=DPI)
    plt.close(fig)
    schedule = variants["cos (default)"]
    print(
        "schedules_one_cycle: start",
        f"{float(schedule(0)):.4g}, peak at step 299: {float(schedule(299)):.4g},",
        f"end {float(schedule(999)):.3g}",
    )


class Recorder(keras.callbacks.Callback):
    """The rate and momentum of each step, read from the optimizer."""

    def on_train_begin(self, logs=None):
        self.rates, self.momenta = [], []

    def on_train_batch_end(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        optimizer = self.model.optimizer
        self.rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        self.momenta.append(float(optimizer.momentum))


def one_cycle_scheduler_curve() -> None:
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    x = np.random.default_rng(SEED).normal(size=(640, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    recorder = Recorder()
    callback = OneCycleScheduler(max_rate=0.05, cycle_momentum=True)
    model.fit(x, y, batch_size=32, epochs=10, verbose=0, callbacks=[callback, recorder])
    # The momentum the step used is scheduled inside it; the Python float the
    # optimizer holds is updated when the fit ends, so read it from the schedule.
    steps = np.arange(len(recorder.rates))
    momenta = keras.ops.convert_to_numpy(callback.schedule.momentum(steps, 0.85, 0.95))
    fig, (rate_ax, momentum_ax) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    rate_ax.plot(steps, recorder.rates)
    rate_ax.set_ylabel("learning rate")
    rate_ax.set_title(
        "OneCycleScheduler(max_rate=0.05, cycle_momentum=True)\n"
        "iterations=None: the whole fit, 10 epochs x 20 steps"
    )
    momentum_ax.plot(steps, momenta, color="C1")
    momentum_ax.set_ylabel("SGD momentum")
    momentum_ax.set_xlabel("optimizer step")
    fig.tight_layout()
    fig.savefig(IMG / "schedules_one_cycle_scheduler.png", dpi=DPI)
    plt.close(fig)
    print(
        "schedules_one_cycle_scheduler:",
        f"{callback.iterations} steps, rates {recorder.rates[0]:.3g} ->",
        f"{max(recorder.rates):.3g} -> {recorder.rates[-1]:.3g};",
        f"after fit: learning_rate={float(model.optimizer.learning_rate):.3g},",
        f"momentum={model.optimizer.momentum:.3g}",
    )


def main() -> None:
    IMG.mkdir(exist_ok=True)
    one_cycle_curves()
    one_cycle_scheduler_curve()
    lr_finder_sweep()


if __name__ == "__main__":
    main()
