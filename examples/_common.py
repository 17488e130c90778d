"""Helpers shared by the example scripts: flags, data splits, timing, tables, figures.

Not part of the kerasx API; each example imports it as `_common` from its own
directory.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasx.datasets import load_data
from kerasx.plotting import plot_learning_curves

CLASS_NAMES = {
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "mnist": [str(digit) for digit in range(10)],
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
}


def make_parser(
    description: str,
    *,
    default_dataset: str,
    default_epochs: int,
    default_output: str,
    quick_epochs: int = 3,
    quick_limit: int = 5000,
) -> argparse.ArgumentParser:
    """The flags every example takes; `--quick` means `quick_limit`/`quick_epochs`."""
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        default=default_dataset,
        choices=sorted(CLASS_NAMES),
        help="dataset to train on (fashion_mnist is available offline)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"maximum epochs per variant (default {default_epochs}; "
        f"{quick_epochs} with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{quick_limit} training images, {quick_epochs} epochs (a few minutes "
        "on 2 CPU cores)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use at most this many training images (validation/test: a tenth)",
    )
    parser.add_argument("--output", default=default_output, help="output directory")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument(
        "--quiet", action="store_true", help="no Keras progress bars or logs"
    )
    caller = Path(inspect.currentframe().f_back.f_code.co_filename)
    parser.set_defaults(
        _script=f"examples/{caller.name}",
        _default_epochs=default_epochs,
        _quick_epochs=quick_epochs,
        _quick_limit=quick_limit,
    )
    return parser


def parse(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """Parses `argv` and resolves the `--quick` / `--epochs` / `--limit` defaults."""
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = args._quick_epochs if args.quick else args._default_epochs
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.limit is None and args.quick:
        args.limit = args._quick_limit
    if args.limit is not None and args.limit < 20:
        parser.error(f"--limit must be >= 20, got {args.limit}")
    args.output = Path(args.output)
    args.output.mkdir(parents=True, exist_ok=True)
    args.verbose = 0 if args.quiet else "auto"
    args.run = start_run(args._script, sys.argv[1:] if argv is None else argv)
    return args


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not on every platform
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def start_run(script: str, argv: list[str]) -> dict:
    """The start of a results file's `run` record: the command and the load."""
    command = " ".join(
        [f"KERAS_BACKEND={keras.backend.backend()}", "python", script]
        + [shlex.quote(str(arg)) for arg in argv]
    )
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        ),
        "load_average_start": _load_average(),
        "_clock": time.perf_counter(),
    }


def finish_run(run: dict) -> dict:
    """The `run` record a results file keeps: command, machine, date, versions.

    `docs/hooks/results.py` prints it under the first table of the file.
    """
    import kerasx

    versions = {"python": platform.python_version(), "keras": keras.__version__}
    backend = keras.backend.backend()
    if backend in sys.modules:  # the backend's package: tensorflow, jax, torch
        versions[backend] = sys.modules[backend].__version__
    versions.update(numpy=np.__version__, kerasx=kerasx.__version__)
    load_start, load_end = run["load_average_start"], _load_average()
    machine = f"{os.cpu_count()}-core {_cpu_model()}"
    if load_start is not None and load_end is not None:
        machine += (
            f", load average {load_start:g} at the start, {load_end:g} at the end"
        )
    return {
        "command": run["command"],
        "machine": machine,
        "date": run["date"],
        "wall_seconds": round(time.perf_counter() - run["_clock"], 1),
        "versions": versions,
    }


@dataclass
class Split:
    """Train / validation / test arrays, pixels scaled to [0, 1] as float32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        return (
            f"{len(self.x_train)} train / {len(self.x_valid)} validation / "
            f"{len(self.x_test)} test images of shape {self.x_train.shape[1:]}"
        )


def load_split(
    dataset: str,
    *,
    limit: int | None = None,
    validation_size: int = 5000,
    channels_last: bool = False,
) -> Split:
    """Loads a dataset with `kerasx.datasets.load_data` and splits off validation.

    The last `validation_size` training images are the validation set, as in
    Hands-On ML (55 000 / 5 000 for Fashion-MNIST, 45 000 / 5 000 for
    CIFAR-10). With `limit`, the first `limit` training images are kept and
    the validation and test sets shrink to `limit // 10` images.
    """
    try:
        (x_train, y_train), (x_test, y_test) = load_data(dataset)
    except RuntimeError as e:  # not on disk and the download failed
        raise SystemExit(f"error: {e}\nOr run with --dataset fashion_mnist.") from e
    if len(x_train) <= validation_size:
        validation_size = len(x_train) // 6
    x_valid, y_valid = x_train[-validation_size:], y_train[-validation_size:]
    x_train, y_train = x_train[:-validation_size], y_train[:-validation_size]
    if limit is not None:
        small = max(limit // 10, 10)
        x_train, y_train = x_train[:limit], y_train[:limit]
        x_valid, y_valid = x_valid[:small], y_valid[:small]
        x_test, y_test = x_test[:small], y_test[:small]

    def prepare(images: np.ndarray) -> np.ndarray:
        images = images.astype("float32") / 255.0
        if channels_last and images.ndim == 3:
            images = images[..., np.newaxis]
        return images

    return Split(
        prepare(x_train),
        y_train.reshape(-1).astype("int64"),
        prepare(x_valid),
        y_valid.reshape(-1).astype("int64"),
        prepare(x_test),
        y_test.reshape(-1).astype("int64"),
        CLASS_NAMES[dataset],
    )


class EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock seconds of every epoch (validation included)."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class AppliedLearningRates(keras.callbacks.Callback):
    """Records the learning rate each optimizer step applied, one per batch.

    A `LearningRateSchedule` passed to the optimizer is evaluated at
    `optimizer.iterations`, so it is read before its step; a learning-rate
    variable (which kerasx's 1cycle callbacks write inside the step) is read
    after it.
    """

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.rates: list[float] = []
        learning_rate = self.model.optimizer.learning_rate
        self._read_before_step = not isinstance(learning_rate, keras.Variable)

    def _read(self) -> float:
        rate = self.model.optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(rate))

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._read_before_step:
            self.rates.append(self._read())

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self._read_before_step:
            self.rates.append(self._read())


@dataclass
class Row:
    """One line of an example's results table."""

    variant: str
    best_val_accuracy: float
    best_epoch: int
    epochs: int
    seconds_per_epoch: float
    extra: dict[str, Any] = field(default_factory=dict)


def row_from_history(
    variant: str,
    history: keras.callbacks.History,
    timer: EpochTimer,
    **extra: Any,
) -> Row:
    """Summarises a `fit` run: best validation accuracy, its epoch, median s/epoch."""
    val_accuracy = history.history["val_accuracy"]
    best = int(np.argmax(val_accuracy))
    return Row(
        variant=variant,
        best_val_accuracy=float(val_accuracy[best]),
        best_epoch=best + 1,
        epochs=len(val_accuracy),
        seconds_per_epoch=float(statistics.median(timer.seconds)),
        extra=extra,
    )


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[Row]) -> str:
    """A Markdown table: variant, best val accuracy, epoch, epochs, s/epoch, extras."""
    extra_keys: list[str] = []
    for row in rows:
        extra_keys += [key for key in row.extra if key not in extra_keys]
    header = [
        "variant",
        "best val accuracy",
        "at epoch",
        "epochs run",
        "s/epoch",
        *extra_keys,
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        cells = [
            row.variant,
            f"{row.best_val_accuracy:.4f}",
            str(row.best_epoch),
            str(row.epochs),
            f"{row.seconds_per_epoch:.2f}",
            *(format_cell(row.extra.get(key, "")) for key in extra_keys),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(
    rows: list[Row], args: argparse.Namespace, header: str, **more: Any
) -> list[dict]:
    """Prints the table and writes `results.md` and `results.json` to `args.output`.

    `results.json` holds the run record, the rows (`results`) and `more`.
    """
    table = format_table(rows)
    backend = keras.backend.backend()
    config = (
        f"{header}\nBackend: {backend}, Keras {keras.__version__}; "
        f"dataset {args.dataset}; epochs {args.epochs}; seed {args.seed}"
        + ("; --quick" if args.quick else "")
        + (f"; --limit {args.limit}" if args.limit else "")
    )
    print(f"\n{config}\n\n{table}\n")
    (args.output / "results.md").write_text(f"{config}\n\n{table}\n")
    records = [_json_safe(asdict(row)) for row in rows]
    write_results(args, {"results": records, **more})
    return records


def write_results(args: argparse.Namespace, record: dict) -> dict:
    """Writes `record` with the run's `run` entry to `args.output/results.json`."""
    record = {"run": finish_run(args.run), **record}
    text = json.dumps(_json_safe(record), indent=2, allow_nan=False)
    (args.output / "results.json").write_text(text + "\n")
    return record


def _json_safe(value: Any) -> Any:
    """NaN and infinities (e.g. an LR sweep without a valley) become `None`."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def new_figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (4.5, 3.4)):
    """A figure of `nrows` x `ncols` axes (matplotlib's Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    return fig, axes


def save_figure(fig: Any, path: Path) -> Path:
    """Saves a figure as a 150 dpi PNG and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def integer_epochs(ax: Any) -> None:
    """Ticks of the x axis (epochs, layers) at whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_val_accuracy(histories: dict[str, Any], path: Path) -> Path:
    """All variants' validation accuracy per epoch on one axes."""
    fig, axes = new_figure(size=(6, 4))
    ax = axes[0, 0]
    for variant, history in histories.items():
        values = history.history["val_accuracy"]
        ax.plot(range(1, len(values) + 1), values, marker="o", label=variant)
    ax.set(xlabel="epoch", ylabel="validation accuracy")
    integer_epochs(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def plot_history_grid(
    histories: dict[str, Any],
    output: Path,
    *,
    ncols: int | None = None,
    size: tuple[float, float] = (4.5, 3.0),
    title_fontsize: str | None = None,
) -> None:
    """`learning_curves.png` and `val_accuracy.png`.

    Each variant gets a column of two panels, loss above accuracy (one
    quantity per y axis), training solid and validation dashed. `ncols`
    defaults to one column per variant; unused panels are hidden.
    """
    ncols = ncols or len(histories)
    rows_of_variants = -(-len(histories) // ncols)
    fig, axes = new_figure(ncols, 2 * rows_of_variants, size=size)
    for index, (variant, history) in enumerate(histories.items()):
        row, col = 2 * (index // ncols), index % ncols
        for offset, metric in enumerate(("loss", "accuracy")):
            ax = axes[row + offset, col]
            plot_learning_curves(history, ax=ax, metrics=[metric])
            ax.set_ylabel(metric)
            integer_epochs(ax)
        axes[row, col].set_title(variant, fontsize=title_fontsize)
    for index in range(len(histories), rows_of_variants * ncols):
        row, col = 2 * (index // ncols), index % ncols
        axes[row, col].set_visible(False)
        axes[row + 1, col].set_visible(False)
    save_figure(fig, output / "learning_curves.png")
    plot_val_accuracy(histories, output / "val_accuracy.png")
