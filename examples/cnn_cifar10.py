"""CNN on CIFAR-10: max-pooling vs stride-2, global average pooling vs flatten, L2.

Four `kerasx.models.build_cnn` variants, each a VGG-style stack of
Conv2D → BatchNormalization → ReLU blocks (BN before the activation):

- max-pooling downsampling + global average pooling head (the baseline),
- stride-2 convolutions instead of max-pooling,
- a flatten + Dense head instead of global average pooling,
- the baseline with L2(1e-4) on every kernel.

All train with Adam, ReduceLROnPlateau, EarlyStopping and
ModelCheckpoint(save_best_only=True). The table adds parameters, test accuracy
of the best checkpoint and its expected calibration error. Writes
`learning_curves.png`, `val_accuracy.png`, `reliability.png`, `results.md`,
`results.json` and one `<variant>.keras` checkpoint per variant.

    python examples/cnn_cifar10.py --dataset fashion_mnist --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from kerasx.models import build_cnn
from kerasx.saving import load
from kerasx.uncertainty import expected_calibration_error

# (variant, checkpoint name, build_cnn keyword arguments)
VARIANTS = [
    ("max-pool + GAP", "maxpool_gap", {}),
    ("stride-2 conv + GAP", "stride_gap", {"downsample": "stride"}),
    (
        "max-pool + flatten",
        "maxpool_flatten",
        {"head": "flatten", "dense_units": (128,)},
    ),
    ("max-pool + GAP + L2(1e-4)", "maxpool_gap_l2", {"kernel_regularizer": "l2"}),
]


def build_parser():
    parser = _common.make_parser(
        __doc__.splitlines()[0],
        default_dataset="cifar10",
        default_epochs=20,
        default_output="outputs/cnn_cifar10",
        quick_limit=3000,
    )
    parser.add_argument(
        "--filters",
        type=int,
        nargs="+",
        default=None,
        help="filters per block (default 32 64 128; 16 32 64 with --quick)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--patience", type=int, default=5, help="EarlyStopping")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    """Trains the four CNN variants and returns the table rows."""
    args = _common.parse(build_parser(), argv)
    filters = tuple(args.filters or ((16, 32, 64) if args.quick else (32, 64, 128)))
    keras.utils.set_random_seed(args.seed)
    data = _common.load_split(args.dataset, limit=args.limit, channels_last=True)
    print(f"{args.dataset}: {data.describe()}; filters {filters}")
    rows, histories, best_probs = [], {}, {}
    for variant, name, options in VARIANTS:
        options = dict(options)
        if options.get("kernel_regularizer") == "l2":
            options["kernel_regularizer"] = keras.regularizers.L2(1e-4)
        model = build_cnn(
            data.x_train.shape[1:],
            data.num_classes,
            filters=filters,
            name=name,
            **options,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        timer = _common.EpochTimer()
        checkpoint = args.output / f"{name}.keras"
        history = model.fit(
            data.x_train,
            data.y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_data=(data.x_valid, data.y_valid),
            callbacks=[
                timer,
                keras.callbacks.ModelCheckpoint(
                    str(checkpoint), monitor="val_accuracy", save_best_only=True
                ),
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss", factor=0.5, patience=2
                ),
                keras.callbacks.EarlyStopping(
                    monitor="val_accuracy", patience=args.patience
                ),
            ],
            verbose=args.verbose,
        )
        best = load(checkpoint)
        probs = best.predict(data.x_test, verbose=0)
        best_probs[variant] = probs
        histories[variant] = history
        rows.append(
            _common.row_from_history(
                variant,
                history,
                timer,
                params=model.count_params(),
                **{
                    "test accuracy": float(
                        np.mean(np.argmax(probs, axis=-1) == data.y_test)
                    ),
                    "test ECE": expected_calibration_error(data.y_test, probs),
                },
            )
        )
    plot(args.output, histories, best_probs, data.y_test)
    return _common.report(
        rows,
        args,
        f"CNN (filters {filters}) on {args.dataset}: {data.describe()}",
    )


def plot(output: Path, histories: dict, best_probs: dict, y_test: np.ndarray) -> None:
    """Learning curves, validation accuracy and (with kerasx.plotting) reliability."""
    _common.plot_history_grid(histories, output, ncols=2)
    try:
        from kerasx.plotting import reliability_diagram
    except ImportError:
        print("Reliability diagram skipped: kerasx.plotting is not available yet.")
        return
    fig, axes = _common.new_figure(2, 2)
    for ax, (variant, probs) in zip(axes.flat, best_probs.items(), strict=False):
        reliability_diagram(y_test, probs, ax=ax)
        ax.set_title(variant, fontsize="medium")
    _common.save_figure(fig, output / "reliability.png")


if __name__ == "__main__":
    main()
