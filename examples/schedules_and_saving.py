"""Learning-rate schedules and saving: constant vs exponential decay vs 1cycle.

Trains the same 300-100 relu MLP with SGD (momentum 0.9) three ways: a constant
learning rate; exponential decay `lr0 * 0.1 ** (epoch / s)` through
`keras.callbacks.LearningRateScheduler`; and `kerasx.schedules.OneCycle` as the
optimizer's learning rate. The first two use EarlyStopping; 1cycle runs its
full cycle. The best model is then saved
with `kerasx.saving.save` as HDF5 (`.h5`), JSON architecture + weights
(`.json`), weights only (`.weights.h5`, loaded into a freshly built model) and
native `.keras`; each copy is loaded back with `kerasx.saving.load` and its
predictions compared with the original's.

Writes `learning_rates.png`, `learning_curves.png`, `val_accuracy.png`,
`results.md`, `results.json`, `saving.json`, `applied_rates.json` (the rate of
every optimizer step of each run) and the saved models.

    python examples/schedules_and_saving.py --dataset fashion_mnist --quick
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from kerasx import saving
from kerasx.models import build_mlp
from kerasx.schedules import OneCycle

FORMATS = [
    ("HDF5 (.h5)", "model.h5"),
    ("JSON + weights (.json)", "architecture.json"),
    ("weights only (.weights.h5)", "weights_only.weights.h5"),
    ("native (.keras)", "model.keras"),
]


def build_parser():
    parser = _common.make_parser(
        __doc__.splitlines()[0],
        default_dataset="fashion_mnist",
        default_epochs=15,
        default_output="outputs/schedules_and_saving",
        quick_epochs=5,
    )
    parser.add_argument("--learning-rate", type=float, default=0.01, help="lr0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patience", type=int, default=5, help="EarlyStopping")
    parser.add_argument(
        "--one-cycle-max-rate", type=float, default=0.05, help="OneCycle peak"
    )
    return parser


class LearningRateLogger(keras.callbacks.Callback):
    """Records the optimizer's learning rate at the end of every epoch."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.rates: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        rate = self.model.optimizer.learning_rate
        self.rates.append(float(keras.ops.convert_to_numpy(rate)))


def exponential_decay(lr0: float, s: float):
    """`epoch -> lr0 * 0.1 ** (epoch / s)` (Hands-On ML ch.11)."""

    def schedule(epoch: int, lr: float | None = None) -> float:
        return lr0 * 0.1 ** (epoch / s)

    return schedule


def main(argv: list[str] | None = None) -> list[dict]:
    """Trains the three schedules, round-trips the best model, returns the rows."""
    args = _common.parse(build_parser(), argv)
    keras.utils.set_random_seed(args.seed)
    data = _common.load_split(args.dataset, limit=args.limit)
    print(f"{args.dataset}: {data.describe()}")
    steps = math.ceil(len(data.x_train) / args.batch_size) * args.epochs
    lr0 = args.learning_rate
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=args.patience, restore_best_weights=True
    )
    # 1cycle gets no EarlyStopping: stopping it at the peak rate, before the
    # annealing phase, throws away what the cycle is for.
    variants = [
        ("constant", lr0, [early_stopping]),
        (
            "exponential decay",
            lr0,
            [
                keras.callbacks.LearningRateScheduler(
                    exponential_decay(lr0, s=args.epochs)
                ),
                early_stopping,
            ],
        ),
        (
            "1cycle (OneCycle schedule)",
            OneCycle(args.one_cycle_max_rate, total_steps=steps),
            [],
        ),
    ]
    rows, histories, rates, models, applied_rates = [], {}, {}, {}, {}
    for variant, learning_rate, callbacks in variants:
        model = build_mlp(
            data.x_train.shape[1:],
            data.num_classes,
            hidden_units=(300, 100),
            activation="relu",
        )
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        timer, logger = _common.EpochTimer(), LearningRateLogger()
        applied = _common.AppliedLearningRates()
        history = model.fit(
            data.x_train,
            data.y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_data=(data.x_valid, data.y_valid),
            callbacks=[timer, logger, *callbacks, applied],
            verbose=args.verbose,
        )
        applied_rates[variant] = applied.rates
        histories[variant], rates[variant], models[variant] = (
            history,
            logger.rates,
            model,
        )
        rows.append(
            _common.row_from_history(
                variant, history, timer, **{"final lr": logger.rates[-1]}
            )
        )

    best = max(rows, key=lambda row: row.best_val_accuracy)
    saved = round_trip(models[best.variant], data, args.output)
    plot(args.output, histories, rates)
    records = _common.report(
        rows, args, f"LR schedules on {args.dataset}", saving=saved
    )
    lines = [
        f"Saving '{best.variant}' with kerasx.saving:",
        "",
        "| format | files | size (KB) | save + load (s) | max abs diff in "
        "predictions | val accuracy after load |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['format']} | {', '.join(s['files'])} | {s['size_kb']:.0f} | "
        f"{s['seconds']:.2f} | {s['max_abs_diff']:.1e} | {s['val_accuracy']:.4f} |"
        for s in saved
    ]
    section = "\n".join(lines)
    print(section + "\n")
    with open(args.output / "results.md", "a") as f:
        f.write("\n" + section + "\n")
    (args.output / "saving.json").write_text(json.dumps(saved, indent=2) + "\n")
    (args.output / "applied_rates.json").write_text(
        json.dumps({"total_steps": steps, "rates": applied_rates}) + "\n"
    )
    return records


def round_trip(model: keras.Model, data, output: Path) -> list[dict]:
    """Saves and reloads `model` in every format; compares the predictions."""
    reference = model.predict(data.x_valid, verbose=0)
    results = []
    for name, filename in FORMATS:
        path = output / filename
        start = time.perf_counter()
        saving.save(model, path)
        if filename.endswith(".weights.h5"):
            # Weights only: the architecture must come from code.
            fresh = keras.models.clone_model(model)
            loaded = saving.load(path, model=fresh)
        else:
            loaded = saving.load(path)
        seconds = time.perf_counter() - start
        files = [path]
        if path.suffix == ".json":
            files.append(path.with_suffix(".weights.h5"))
        predictions = loaded.predict(data.x_valid, verbose=0)
        results.append(
            {
                "format": name,
                "files": [f.name for f in files],
                "size_kb": sum(f.stat().st_size for f in files) / 1024,
                "seconds": seconds,
                "max_abs_diff": float(np.max(np.abs(predictions - reference))),
                "val_accuracy": float(
                    np.mean(np.argmax(predictions, axis=-1) == data.y_valid)
                ),
            }
        )
    return results


def plot(output: Path, histories: dict, rates: dict) -> None:
    """Learning rate per epoch, learning curves, validation accuracy."""
    fig, axes = _common.new_figure(size=(6, 4))
    ax = axes[0, 0]
    for variant, values in rates.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=variant)
    ax.set(xlabel="epoch", ylabel="learning rate (end of epoch)", yscale="log")
    _common.integer_epochs(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    _common.save_figure(fig, output / "learning_rates.png")
    _common.plot_history_grid(histories, output)


if __name__ == "__main__":
    main()
