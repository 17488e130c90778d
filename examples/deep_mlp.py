"""Hands-On ML ch.11 exercise 8: a 20 x 100 deep MLP, five ways.

a-b. ELU + He normal, Nadam(5e-4), EarlyStopping + ModelCheckpoint, after an
     LR sweep (`kerasx.lr_finder.find_learning_rate`) to check the learning rate;
c.   + BatchNormalization before each activation;
d.   SELU + LeCun normal on standardised inputs (self-normalising);
e.   SELU + one AlphaDropout(0.1) after the last hidden layer, Nadam(5e-4), as
     in the exercise's solution; then MC dropout on the same model
     (`kerasx.uncertainty.to_mc` + `mc_predict`): accuracy and calibration
     before and after;
f.   1cycle (`kerasx.callbacks.OneCycleScheduler`) after an LR range test, on
     the model of (e) (`--one-cycle-dropout 0` drops its AlphaDropout);
g.   SWA (`kerasx.callbacks.StochasticWeightAveraging`, `swap=False`) over the
     last `--swa-epochs` epochs of that same 1cycle run, BatchNorm statistics
     recomputed on the training images (`update_bn_data`): the averaged
     weights scored on validation, beside the 1cycle row's best epoch.

`--variants` runs a subset (e.g. `--variants one_cycle one_cycle_swa`; the SWA
row needs the 1cycle run, which it shares).

The exercise uses CIFAR-10 (`--dataset cifar10`); Fashion-MNIST works offline.
Images are flattened. Prints a results table and writes `learning_curves.png`,
`val_accuracy.png`, `lr_vs_loss.png`, `reliability.png`, `results.md`,
`results.json`, the best checkpoint of each run (`<run>.keras`), the
1cycle run's per-step learning rates (`one_cycle_rates.json`), the SWA model
(`one_cycle_swa.keras`) and the weights it averaged (`swa_epoch_weights.npz`)
to `--output`.

    python examples/deep_mlp.py --quick --dataset fashion_mnist \
        --output outputs/deep_mlp
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from kerasx.callbacks import OneCycleScheduler, StochasticWeightAveraging
from kerasx.lr_finder import find_learning_rate, plot_lr_vs_loss
from kerasx.models import build_mlp, build_selu_mlp
from kerasx.uncertainty import (
    expected_calibration_error,
    mc_predict,
    to_mc,
)

ALPHA_DROPOUT_VARIANT = "SELU + AlphaDropout(0.1) before the output"
VARIANTS = ("elu_he", "elu_bn", "selu", "selu_alpha", "one_cycle", "one_cycle_swa")


def build_parser():
    parser = _common.make_parser(
        __doc__.splitlines()[0],
        default_dataset="cifar10",
        default_epochs=10,
        default_output="outputs/deep_mlp",
        quick_epochs=5,
        quick_limit=10000,
    )
    parser.add_argument("--depth", type=int, default=20, help="hidden layers")
    parser.add_argument("--units", type=int, default=100, help="units per layer")
    parser.add_argument("--patience", type=int, default=5, help="EarlyStopping")
    parser.add_argument(
        "--learning-rate", type=float, default=5e-4, help="Nadam, steps a-e"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--one-cycle-batch-size", type=int, default=128, help="as in the book"
    )
    parser.add_argument(
        "--one-cycle-max-rate",
        type=float,
        default=None,
        help="peak 1cycle rate (default: a third of the range test's lowest-loss rate)",
    )
    parser.add_argument("--mc-samples", type=int, default=100)
    parser.add_argument(
        "--swa-epochs",
        type=int,
        default=3,
        help="last epochs of the 1cycle run that SWA averages (>= 1)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="runs to do (their checkpoint names); one_cycle_swa shares the 1cycle run",
    )
    parser.add_argument(
        "--one-cycle-dropout",
        type=float,
        default=0.1,
        help="rate of the 1cycle model's AlphaDropout before the output layer "
        "(0: none)",
    )
    return parser


def standardizer(x_train: np.ndarray) -> keras.layers.Normalization:
    """Per-pixel standardisation (mean 0, std 1), adapted on the training set."""
    layer = keras.layers.Normalization(axis=tuple(range(1, x_train.ndim)))
    layer.adapt(x_train)
    return layer


def compile_nadam(model: keras.Model, learning_rate: float) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Nadam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(model, name, data, args, *, batch_size, callbacks=(), early_stopping=True):
    """Fits with ModelCheckpoint (+ EarlyStopping) and returns (history, timer)."""
    timer = _common.EpochTimer()
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(args.output / f"{name}.keras"),
        monitor="val_accuracy",
        save_best_only=True,
    )
    all_callbacks = [timer, checkpoint, *callbacks]
    if early_stopping:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                patience=args.patience,
                restore_best_weights=True,
            )
        )
    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=args.epochs,
        batch_size=batch_size,
        validation_data=(data.x_valid, data.y_valid),
        callbacks=all_callbacks,
        verbose=args.verbose,
    )
    return history, timer


def lr_sweep(model, data, batch_size, name, sweeps) -> tuple[float, float]:
    """Runs `find_learning_rate` (weights restored after).

    Returns the finder's suggestion (the valley) and the rate at the minimum of
    the smoothed loss.
    """
    sweep = find_learning_rate(model, data.x_train, data.y_train, batch_size=batch_size)
    sweeps[name] = sweep
    lowest = float(np.asarray(sweep.rates)[np.argmin(sweep.smoothed_losses)])
    print(
        f"LR sweep '{name}': valley {sweep.suggestion:.3g}, lowest smoothed loss "
        f"at {lowest:.3g}"
    )
    return float(sweep.suggestion), lowest


def accuracy(y_true: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=-1) == y_true))


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs the exercise and returns the table rows as dicts."""
    parser = build_parser()
    args = _common.parse(parser, argv)
    if args.swa_epochs < 1 or args.swa_epochs > args.epochs:
        parser.error(
            f"--swa-epochs must be in [1, --epochs={args.epochs}], "
            f"got {args.swa_epochs}"
        )
    variants = set(args.variants)
    keras.utils.set_random_seed(args.seed)
    data = _common.load_split(args.dataset, limit=args.limit)
    print(f"{args.dataset}: {data.describe()}")
    shape, classes = data.x_train.shape[1:], data.num_classes
    hidden = (args.units,) * args.depth
    rows, histories, sweeps = [], {}, {}
    probs = mc_probs = None

    def record(variant, history, timer, **extra):
        histories[variant] = history
        rows.append(_common.row_from_history(variant, history, timer, **extra))

    # a-b. ELU + He; an LR sweep first (the finder restores the weights after).
    if "elu_he" in variants:
        elu_he(data, args, shape, classes, hidden, sweeps, record)

    # c. + BatchNormalization before each ELU (Dense without bias).
    if "elu_bn" in variants:
        model = compile_nadam(
            build_mlp(shape, classes, hidden_units=hidden, batch_norm="before"),
            args.learning_rate,
        )
        history, timer = train(model, "elu_bn", data, args, batch_size=args.batch_size)
        record(
            "+ BatchNorm", history, timer, optimizer=f"Nadam({args.learning_rate:g})"
        )

    # d. SELU + LeCun normal, standardised inputs.
    if "selu" in variants:
        selu(data, args, shape, classes, hidden, record)

    # e. + one AlphaDropout(0.1) before the output layer, as the exercise's
    # solution places it; then MC dropout on the same weights.
    if "selu_alpha" in variants:
        probs, mc_probs = selu_alpha(data, args, shape, classes, hidden, record)

    # f-g. 1cycle after an LR range test; SWA over its last epochs.
    more = {}
    if variants & {"one_cycle", "one_cycle_swa"}:
        more["one_cycle_max_rate"] = one_cycle(
            data, args, shape, classes, hidden, sweeps, record, rows, variants
        )

    plot(args.output, histories, sweeps, data.y_valid, probs, mc_probs)
    more["lr_sweeps"] = {
        name: {
            "valley": float(sweep.suggestion),
            "lowest_loss_rate": float(
                np.asarray(sweep.rates)[np.argmin(sweep.smoothed_losses)]
            ),
        }
        for name, sweep in sweeps.items()
    }
    if probs is not None:
        more["mc_dropout"] = {
            "samples": args.mc_samples,
            "accuracy": accuracy(data.y_valid, probs),
            "mc_accuracy": accuracy(data.y_valid, mc_probs),
            "ece": float(expected_calibration_error(data.y_valid, probs)),
            "mc_ece": float(expected_calibration_error(data.y_valid, mc_probs)),
        }
    return _common.report(
        rows,
        args,
        f"Deep MLP ({args.depth} x {args.units}) on {args.dataset}: {data.describe()}",
        **more,
    )


def elu_he(data, args, shape, classes, hidden, sweeps, record) -> None:
    """a-b. ELU + He normal, Nadam, after an LR sweep."""
    model = compile_nadam(build_mlp(shape, classes, hidden_units=hidden), 1e-3)
    found = lr_sweep(model, data, args.batch_size, "ELU + He, Nadam", sweeps)
    model.optimizer.learning_rate = args.learning_rate
    history, timer = train(model, "elu_he", data, args, batch_size=args.batch_size)
    record(
        "ELU + He normal",
        history,
        timer,
        optimizer=f"Nadam({args.learning_rate:g})",
        **{"LR sweep valley": found[0]},
    )


def selu(data, args, shape, classes, hidden, record) -> None:
    """d. SELU + LeCun normal on standardised inputs."""
    model = compile_nadam(
        build_selu_mlp(
            shape,
            classes,
            hidden_units=hidden,
            preprocessing=standardizer(data.x_train),
        ),
        args.learning_rate,
    )
    history, timer = train(model, "selu", data, args, batch_size=args.batch_size)
    record("SELU + LeCun", history, timer, optimizer=f"Nadam({args.learning_rate:g})")


def selu_alpha(data, args, shape, classes, hidden, record):
    """e. One AlphaDropout(0.1) before the output; MC dropout on its weights."""
    model = compile_nadam(
        build_selu_mlp(
            shape,
            classes,
            hidden_units=hidden,
            alpha_dropout_rate=0.1,
            dropout_position="last",
            preprocessing=standardizer(data.x_train),
        ),
        args.learning_rate,
    )
    history, timer = train(model, "selu_alpha", data, args, batch_size=args.batch_size)
    probs = model.predict(data.x_valid, verbose=0)
    mc = mc_predict(
        to_mc(model), data.x_valid, n_samples=args.mc_samples, seed=args.seed
    )
    plain_accuracy, mc_accuracy = (
        accuracy(data.y_valid, probs),
        accuracy(data.y_valid, mc.mean),
    )
    record(
        ALPHA_DROPOUT_VARIANT,
        history,
        timer,
        optimizer=f"Nadam({args.learning_rate:g})",
        **{
            "MC dropout accuracy": mc_accuracy,
            "ECE plain → MC": (
                f"{expected_calibration_error(data.y_valid, probs):.4f} → "
                f"{expected_calibration_error(data.y_valid, mc.mean):.4f}"
            ),
        },
    )
    print(
        f"MC dropout ({args.mc_samples} samples): validation accuracy "
        f"{plain_accuracy:.4f} → {mc_accuracy:.4f}"
    )
    return probs, mc.mean


class EpochEndWeights(keras.callbacks.Callback):
    """Keeps the trainable weights at the end of each epoch from `start` on."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start = start
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch >= self.start:
            self.weights.append(
                [
                    keras.ops.convert_to_numpy(w)
                    for w in self.model.weights
                    if w.trainable
                ]
            )


def one_cycle(
    data, args, shape, classes, hidden, sweeps, record, rows, variants
) -> float:
    """f. 1cycle: LR range test with SGD, then one cycle at the suggested peak.

    g. SWA over the last `--swa-epochs` epochs of the same run (`swap=False`:
    the 1cycle row keeps its own weights), applied after `fit`. Returns the
    peak rate.
    """

    def one_cycle_model():
        model = build_selu_mlp(
            shape,
            classes,
            hidden_units=hidden,
            alpha_dropout_rate=args.one_cycle_dropout,
            dropout_position="last",
            preprocessing=standardizer(data.x_train),
        )
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    one_cycle_name = "SELU" + (
        f" + AlphaDropout({args.one_cycle_dropout:g})" if args.one_cycle_dropout else ""
    )
    model = one_cycle_model()
    found = lr_sweep(
        model,
        data,
        args.one_cycle_batch_size,
        f"{one_cycle_name}, SGD (range test)",
        sweeps,
    )
    # Peak a few times below the lowest-loss rate, where the loss still falls
    # fast (Géron reads 0.05 off the same curve); the valley is cautious for
    # a schedule that spends most of its steps below its peak.
    max_rate = args.one_cycle_max_rate or found[1] / 3
    steps = math.ceil(len(data.x_train) / args.one_cycle_batch_size) * args.epochs
    model = one_cycle_model()
    applied = _common.AppliedLearningRates()
    swa_start = args.epochs - args.swa_epochs
    swa = StochasticWeightAveraging(
        start_epoch=swa_start, update_bn_data=data.x_train, swap=False
    )
    averaged = EpochEndWeights(swa_start)
    history, timer = train(
        model,
        "one_cycle",
        data,
        args,
        batch_size=args.one_cycle_batch_size,
        # The recorder reads the rate after each step, once the scheduler set it.
        callbacks=[
            OneCycleScheduler(steps, max_rate=max_rate, cycle_momentum=True),
            applied,
            swa,
            averaged,
        ],
        early_stopping=False,
    )
    (args.output / "one_cycle_rates.json").write_text(
        json.dumps({"iterations": steps, "max_rate": max_rate, "rates": applied.rates})
        + "\n"
    )
    one_cycle_row = f"{one_cycle_name}, 1cycle"
    if "one_cycle" in variants:
        record(
            one_cycle_row,
            history,
            timer,
            optimizer=f"SGD 1cycle(max {max_rate:.3g})",
            **{"LR sweep valley": found[0]},
        )
    if "one_cycle_swa" in variants:
        best_iterate = float(np.max(history.history["val_accuracy"]))
        # The model gets the average (and BatchNorm statistics recomputed on
        # the training images, if it has BatchNorm layers).
        swa.apply_average()
        swa_accuracy = accuracy(data.y_valid, model.predict(data.x_valid, verbose=0))
        model.save(args.output / "one_cycle_swa.keras")
        np.savez(
            args.output / "swa_epoch_weights.npz",
            *[w for epoch in averaged.weights for w in epoch],
            epochs=len(averaged.weights),
        )
        rows.append(
            _common.Row(
                variant=f"{one_cycle_row} + SWA (last {args.swa_epochs} epochs)",
                best_val_accuracy=swa_accuracy,
                best_epoch=args.epochs,
                epochs=args.epochs,
                seconds_per_epoch=float(np.median(timer.seconds)),
                extra={
                    "optimizer": f"SGD 1cycle(max {max_rate:.3g})",
                    "vs 1cycle best epoch": f"{swa_accuracy - best_iterate:+.4f}",
                },
            )
        )
    return max_rate


def plot(output: Path, histories, sweeps, y_valid, probs, mc_probs) -> None:
    """Learning curves, validation accuracy, LR vs loss, reliability diagrams."""
    if histories:
        _common.plot_history_grid(histories, output, ncols=min(3, len(histories)))
    if not sweeps:
        return
    fig, axes = _common.new_figure(len(sweeps))
    for ax, (name, sweep) in zip(axes.flat, sweeps.items(), strict=True):
        plot_lr_vs_loss(sweep, ax=ax)
        # Zoom past the final divergence spike, as in the book's figure.
        smoothed = np.asarray(sweep.smoothed_losses)
        ax.set_ylim(smoothed.min() * 0.9, smoothed[0] * 1.3)
        ax.set_title(name, fontsize="medium")
    _common.save_figure(fig, output / "lr_vs_loss.png")

    try:
        from kerasx.plotting import reliability_diagram
    except ImportError:
        print("Reliability diagram skipped: kerasx.plotting is not available yet.")
        return
    if probs is None:  # the MC dropout step (e) did not run
        return
    fig, axes = _common.new_figure(2)
    reliability_diagram(y_valid, probs, ax=axes[0, 0])
    axes[0, 0].set_title("AlphaDropout, deterministic")
    reliability_diagram(y_valid, mc_probs, ax=axes[0, 1])
    axes[0, 1].set_title("MC dropout (mean of samples)")
    _common.save_figure(fig, output / "reliability.png")


if __name__ == "__main__":
    main()
