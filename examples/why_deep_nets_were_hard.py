"""Why deep nets were hard: gradients, XOR, initialisation, dropout, ensembles.

1. The Glorot & Bengio (2010) picture: a deep MLP with sigmoid + small normal
   init vs ReLU + He vs SELU + LeCun (standardised inputs) vs ReLU + He +
   BatchNorm, trained with plain SGD. `kerasx.callbacks.GradientStats` logs the
   loss gradient's L2 norm per layer and `kerasx.callbacks.ActivationStats` the
   activations' mean, std, near-zero and saturated fractions and histograms,
   on a fixed probe batch of 256 training images, every few batches from the
   first one on (the first record is after one SGD step).
2. XOR: no linear model separates it; one hidden layer of 4 tanh units does.
3. Initialisation of a deep relu MLP: small random normal (stddev 0.05) vs
   Glorot uniform vs He normal (per-layer gradient norms by `GradientStats`).
4. Dropout at train vs test time: active in `fit` (and `model(x, training=True)`),
   off in `predict` / `evaluate`, so training accuracy reads lower than it is.
5. An ensemble of 5 MLPs (`kerasx.uncertainty.ensemble_predict`: the mean of
   their probabilities) vs the best single one.

Writes `gradient_norms.png`, `activation_stats.png`,
`gradient_norms_training.png`, `colorful_dimension_<net>.png` (the four nets of
part 1), `xor.png`, `learning_curves.png`, `val_accuracy.png`, `results.md`,
`results.json`, `layer_stats.npz` (the probe batch and, per net of part 1, the
per-layer statistics at the first record and after training), the trained nets
of part 1 (`deep_<net>.keras`), the dropout model (`dropout_mlp.keras`), the
ensemble's members (`ensemble_member<i>.keras`) and its test-set probabilities
(`ensemble_test_probs.npy`).

    python examples/why_deep_nets_were_hard.py --dataset fashion_mnist --quick
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from kerasx.callbacks import ActivationStats, GradientStats
from kerasx.models import build_mlp
from kerasx.plotting import plot_activation_stats, plot_gradient_norms
from kerasx.uncertainty import ensemble_predict

#: Part 1: (file key, label, activation, initializer, batch_norm, standardise).
DEEP_NETS = [
    ("sigmoid", "sigmoid + normal(0.05)", "sigmoid", "random_normal", None, False),
    ("relu", "ReLU + He", "relu", "he_normal", None, False),
    ("selu", "SELU + LeCun", "selu", "lecun_normal", None, True),
    ("relu_bn", "ReLU + He + BatchNorm", "relu", "he_normal", "before", False),
]
PROBE_SIZE = 256
INITIALIZERS = [
    ("random normal (0.05)", "random_normal"),
    ("Glorot uniform", "glorot_uniform"),
    ("He normal", "he_normal"),
]


def build_parser():
    parser = _common.make_parser(
        __doc__.splitlines()[0],
        default_dataset="mnist",
        default_epochs=5,
        default_output="outputs/why_deep_nets_were_hard",
    )
    parser.add_argument("--depth", type=int, default=10, help="hidden layers")
    parser.add_argument("--units", type=int, default=100, help="units per layer")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ensemble-size", type=int, default=5, help=">= 2")
    return parser


def dense_names(model: keras.Model) -> list[str]:
    """The Dense layers, input side first (the output layer last)."""
    return [
        layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)
    ]


def hidden_activation_names(model: keras.Model) -> list[str]:
    """The layer whose output is each hidden layer's activation, input side first.

    `build_mlp` fuses the activation into `block<i>_dense`, or (BatchNorm
    before the activation) puts it in an `Activation` layer after the BN.
    """
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Activation) or (
            isinstance(layer, keras.layers.Dense)
            and layer.name != "output"
            and layer.get_config()["activation"] != "linear"
        ):
            names.append(layer.name)
    return names


def standardizer(x_train: np.ndarray) -> keras.layers.Normalization:
    """Per-pixel standardisation (mean 0, std 1), adapted on the training set."""
    layer = keras.layers.Normalization(axis=tuple(range(1, x_train.ndim)))
    layer.adapt(x_train)
    return layer


def layer_norms(stats: GradientStats, names: list[str], index: int) -> np.ndarray:
    """`grad_norm/<layer>` of the `index`-th record, one per name."""
    return np.array([stats.history[f"grad_norm/{name}"][index] for name in names])


def norms_now(stats: GradientStats, model: keras.Model, names: list[str]) -> np.ndarray:
    """Per-layer gradient L2 norms on the probe at the model's current weights."""
    _, grads = stats.gradients()
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    norms = []
    for name in names:
        layer = model.get_layer(name)
        squares = [
            np.sum(grads[position[id(v)]] ** 2) for v in layer.trainable_variables
        ]
        norms.append(np.sqrt(np.sum(squares)))
    return np.array(norms)


STAT_KINDS = ("mean", "std", "near_zero")


def activation_table(stats: ActivationStats, names: list[str], index: int) -> dict:
    """`{kind: per-layer array}` of the `index`-th record (`saturated`: NaN if none)."""
    table = {
        kind: np.array([stats.history[f"act_{kind}/{n}"][index] for n in names])
        for kind in STAT_KINDS
    }
    table["saturated"] = np.array(
        [
            stats.history.get(f"act_saturated/{n}", [np.nan] * (index + 1))[index]
            for n in names
        ]
    )
    return table


def activations_now(stats: ActivationStats, names: list[str]) -> dict:
    """The same statistics on the probe at the model's current weights."""
    outputs = stats.activations()
    values = {}
    for name in names:
        values.update(stats.statistics(name, outputs[name]))
    table = {
        kind: np.array([values[f"act_{kind}/{n}"] for n in names])
        for kind in STAT_KINDS
    }
    table["saturated"] = np.array(
        [values.get(f"act_saturated/{n}", np.nan) for n in names]
    )
    return table


def fit(model, data, args, *, optimizer, epochs=None, callbacks=()):
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    timer = _common.EpochTimer()
    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=epochs or args.epochs,
        batch_size=args.batch_size,
        validation_data=(data.x_valid, data.y_valid),
        callbacks=[
            *callbacks,
            timer,
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=3, restore_best_weights=True
            ),
        ],
        verbose=args.verbose,
    )
    return history, timer


def accuracy(y_true: np.ndarray, probs) -> float:
    probs = keras.ops.convert_to_numpy(probs)
    return float(np.mean(np.argmax(probs, axis=-1) == y_true))


def ensemble_probabilities(models: list[keras.Model], x: np.ndarray) -> np.ndarray:
    """Soft voting: the mean of the members' predicted class probabilities."""
    return ensemble_predict(models, x).mean


def xor_rows(args) -> tuple[list[_common.Row], keras.Model]:
    """A linear model vs a 2-4-1 tanh MLP on the four XOR points."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    y = np.array([0, 1, 1, 0], dtype="float32")
    # 125 copies of the 4 points: 25 steps per epoch keep Keras' per-epoch
    # overhead out of a 500-step fit.
    x_repeated, y_repeated = np.tile(x, (125, 1)), np.tile(y, 125)
    epochs = 20
    rows, models = [], {}
    linear = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")]
    )
    hidden = build_mlp(
        (2,),
        1,
        hidden_units=(4,),
        activation="tanh",
        kernel_initializer="glorot_uniform",
        output_activation="sigmoid",
    )
    for variant, model in [
        ("XOR: linear (no hidden layer)", linear),
        ("XOR: 2-4-1 tanh", hidden),
    ]:
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss="binary_crossentropy",
            metrics=["binary_accuracy"],
        )
        start = time.perf_counter()
        model.fit(x_repeated, y_repeated, epochs=epochs, batch_size=20, verbose=0)
        seconds = (time.perf_counter() - start) / epochs
        predicted = model.predict(x, verbose=0)[:, 0]
        rows.append(
            _common.Row(
                variant=variant,
                best_val_accuracy=float(np.mean((predicted > 0.5) == (y > 0.5))),
                best_epoch=epochs,
                epochs=epochs,
                seconds_per_epoch=seconds,
                extra={"note": "accuracy on the 4 XOR points (500 Adam steps)"},
            )
        )
        models[variant] = model
    return rows, models["XOR: 2-4-1 tanh"]


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs the five demonstrations and returns the table rows."""
    parser = build_parser()
    args = _common.parse(parser, argv)
    if args.ensemble_size < 2:
        parser.error(f"--ensemble-size must be >= 2, got {args.ensemble_size}")
    keras.utils.set_random_seed(args.seed)
    data = _common.load_split(args.dataset, limit=args.limit)
    print(f"{args.dataset}: {data.describe()}")
    shape, classes = data.x_train.shape[1:], data.num_classes
    deep_units = (args.units,) * args.depth
    probe_x, probe_y = data.x_train[:PROBE_SIZE], data.y_train[:PROBE_SIZE]
    steps_per_epoch = -(-len(data.x_train) // args.batch_size)
    # About 10 records per epoch, the first at the end of the first batch.
    every = max(1, steps_per_epoch // 10)
    rows, histories, deep, init_gradients = [], {}, {}, {}
    arrays = {"probe_x": probe_x, "probe_y": probe_y}

    def deep_sgd_run(variant, activation, initializer, batch_norm=None, scaled=False):
        """A fresh deep MLP trained with SGD(0.01) under the two probes."""
        model = build_mlp(
            shape,
            classes,
            hidden_units=deep_units,
            activation=activation,
            kernel_initializer=initializer,
            batch_norm=batch_norm,
            preprocessing=standardizer(data.x_train) if scaled else None,
        )
        dense, hidden = dense_names(model), hidden_activation_names(model)
        gradients = GradientStats(
            (probe_x, probe_y),
            every=every,
            per="batch",
            norms="layer",
            vanishing_ratio=None,
            exploding_ratio=None,
        )
        activations = ActivationStats(
            probe_x,
            every=every,
            per="batch",
            layers=hidden,
            hist_range=(0.0, 1.0) if activation == "sigmoid" else (0.0, 4.0),
        )
        history, timer = fit(
            model,
            data,
            args,
            optimizer=keras.optimizers.SGD(0.01),
            callbacks=[gradients, activations],
        )
        histories[variant] = history
        start_norms = layer_norms(gradients, dense, 0)
        result = {
            "model": model,
            "dense": dense,
            "hidden": hidden,
            "gradients": gradients,
            "activations": activations,
            "grad_start": start_norms,
            "grad_end": norms_now(gradients, model, dense),
            "act_start": activation_table(activations, hidden, 0),
            "act_end": activations_now(activations, hidden),
        }
        last_hidden = result["act_start"]
        extra = {"grad norm layer 1 / last": start_norms[0] / start_norms[-1]}
        extra["last hidden: std"] = float(last_hidden["std"][-1])
        extra["near zero"] = float(last_hidden["near_zero"][-1])
        if not np.isnan(last_hidden["saturated"][-1]):
            extra["saturated"] = float(last_hidden["saturated"][-1])
        rows.append(_common.row_from_history(variant, history, timer, **extra))
        return result

    # 1. The Glorot & Bengio pattern: per-layer gradients and activations.
    for key, label, activation, initializer, batch_norm, scaled in DEEP_NETS:
        variant = f"{args.depth}-layer {label}, SGD"
        result = deep_sgd_run(variant, activation, initializer, batch_norm, scaled)
        result["label"] = label
        deep[key] = result
        result["model"].save(args.output / f"deep_{key}.keras")
        arrays[f"{key}/grad_steps"] = np.array(result["gradients"].steps)
        for when in ("start", "end"):
            arrays[f"{key}/grad_{when}"] = result[f"grad_{when}"]
            for kind, values in result[f"act_{when}"].items():
                arrays[f"{key}/act_{kind}_{when}"] = values
    np.savez(args.output / "layer_stats.npz", **arrays)

    # 2. XOR.
    xor, xor_model = xor_rows(args)
    rows += xor

    # 3. Initialisation of a deep relu network.
    for name, initializer in INITIALIZERS:
        result = deep_sgd_run(f"relu, init {name}", "relu", initializer)
        init_gradients[name] = result["grad_start"]

    # 4. Dropout: on while training, off at inference.
    model = build_mlp(
        shape, classes, hidden_units=(300, 100), activation="relu", dropout_rate=0.5
    )
    history, timer = fit(model, data, args, optimizer=keras.optimizers.Adam(1e-3))
    model.save(args.output / "dropout_mlp.keras")
    sample = data.x_train[:2000]
    train_on = accuracy(data.y_train[:2000], model(sample, training=True))
    train_off = accuracy(data.y_train[:2000], model.predict(sample, verbose=0))
    repeat_off = model.predict(sample[:8], verbose=0)
    deterministic = np.array_equal(repeat_off, model.predict(sample[:8], verbose=0))
    histories["dropout 0.5"] = history
    rows.append(
        _common.row_from_history(
            "MLP 300-100, dropout 0.5",
            history,
            timer,
            **{
                "train acc, dropout on": train_on,
                "train acc, dropout off": train_off,
            },
        )
    )
    print(
        f"Dropout: training-set accuracy {train_on:.4f} with dropout active vs "
        f"{train_off:.4f} at inference; inference is deterministic: {deterministic}"
    )

    # 5. Ensemble of independently initialised MLPs vs the best one.
    members, member_accuracies, member_seconds, member_epochs = [], [], [], []
    for member in range(args.ensemble_size):
        keras.utils.set_random_seed(args.seed + 1 + member)
        model = build_mlp(shape, classes, hidden_units=(100, 100), activation="relu")
        history, timer = fit(model, data, args, optimizer=keras.optimizers.Adam(1e-3))
        model.save(args.output / f"ensemble_member{member + 1}.keras")
        members.append(model)
        member_accuracies.append(
            accuracy(data.y_valid, model.predict(data.x_valid, verbose=0))
        )
        member_seconds.append(float(np.median(timer.seconds)))
        member_epochs.append(len(history.history["val_accuracy"]))
    # The best member is picked on validation, so both are compared on test.
    best = int(np.argmax(member_accuracies))
    best_test = accuracy(data.y_test, members[best].predict(data.x_test, verbose=0))
    ensemble_test_probs = ensemble_probabilities(members, data.x_test)
    np.save(args.output / "ensemble_test_probs.npy", ensemble_test_probs)
    ensemble_test = accuracy(data.y_test, ensemble_test_probs)
    ensemble_valid_probs = ensemble_probabilities(members, data.x_valid)
    ensemble_valid = accuracy(data.y_valid, ensemble_valid_probs)
    rows.append(
        _common.Row(
            variant="best single MLP 100-100",
            best_val_accuracy=member_accuracies[best],
            best_epoch=member_epochs[best],
            epochs=member_epochs[best],
            seconds_per_epoch=member_seconds[best],
            extra={"test accuracy": best_test, "note": f"best of {args.ensemble_size}"},
        )
    )
    rows.append(
        _common.Row(
            variant=f"ensemble of {args.ensemble_size} (mean probabilities)",
            best_val_accuracy=ensemble_valid,
            best_epoch=max(member_epochs),
            epochs=max(member_epochs),
            seconds_per_epoch=float(np.sum(member_seconds)),
            extra={
                "test accuracy": ensemble_test,
                "note": f"{ensemble_test - best_test:+.4f} test vs best single",
            },
        )
    )

    plot(args.output, histories, deep, init_gradients, xor_model)
    layers = {
        key: {
            f"{kind}_{when}": _floats(result[f"{kind}_{when}"])
            for kind in ("grad", "act")
            for when in ("start", "end")
        }
        for key, result in deep.items()
    }
    return _common.report(
        rows,
        args,
        f"Why deep nets were hard, on {args.dataset}",
        layers=layers,
        init_gradients={name: _floats(norms) for name, norms in init_gradients.items()},
    )


def _floats(values):
    """Per-layer statistics as JSON lists (a dict of them for activations)."""
    if isinstance(values, dict):
        return {kind: _floats(column) for kind, column in values.items()}
    return [float(value) for value in np.asarray(values).reshape(-1)]


def plot(output: Path, histories, deep, init_gradients, xor_model) -> None:
    """Per-layer gradients and activations, the XOR surface, learning curves."""
    fig, axes = _common.new_figure(3, size=(4.6, 3.6))
    panels = [
        (axes[0, 0], {r["label"]: r["grad_start"] for r in deep.values()}, "start"),
        (axes[0, 1], {r["label"]: r["grad_end"] for r in deep.values()}, "end"),
        (axes[0, 2], init_gradients, "init"),
    ]
    titles = {
        "start": "after the first SGD step",
        "end": "after training",
        "init": "ReLU, initialiser (first step)",
    }
    for ax, norms_by_name, when in panels:
        for name, norms in norms_by_name.items():
            ax.semilogy(range(1, len(norms) + 1), norms, marker="o", label=name)
        ax.set(xlabel="Dense layer (1 = input side)", ylabel="‖∂loss/∂layer weights‖")
        _common.integer_epochs(ax)
        ax.set_title(titles[when], fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    _common.save_figure(fig, output / "gradient_norms.png")

    fig, axes = _common.new_figure(4, 2, size=(3.8, 3.2))
    labels = {
        "mean": "mean",
        "std": "std",
        "near_zero": "fraction |a| ≤ 0.05",
        "saturated": "fraction saturated",
    }
    for row, when in enumerate(("start", "end")):
        for col, kind in enumerate(labels):
            ax = axes[row, col]
            for result in deep.values():
                values = result[f"act_{when}"][kind]
                if np.all(np.isnan(values)):
                    continue
                ax.plot(
                    range(1, len(values) + 1), values, marker="o", label=result["label"]
                )
            ax.set(xlabel="hidden layer (1 = input side)", ylabel=labels[kind])
            _common.integer_epochs(ax)
            ax.set_title(
                f"{labels[kind]}, {titles[when] if when == 'end' else 'first record'}",
                fontsize="small",
            )
            ax.grid(True, alpha=0.3)
        axes[row, 0].legend(fontsize="x-small")
    _common.save_figure(fig, output / "activation_stats.png")

    fig, axes = _common.new_figure(len(deep), size=(4, 3.2))
    for ax, result in zip(axes.flat, deep.values(), strict=True):
        plot_gradient_norms(
            result["gradients"], ax=ax, layers=result["dense"], title=result["label"]
        )
    _common.save_figure(fig, output / "gradient_norms_training.png")

    for key, result in deep.items():
        hidden = result["hidden"]
        picked = sorted({0, len(hidden) // 3, 2 * len(hidden) // 3, len(hidden) - 1})
        figure = plot_activation_stats(
            result["activations"], layers=[hidden[i] for i in picked]
        )
        figure.suptitle(result["label"], fontsize="medium")
        _common.save_figure(figure, output / f"colorful_dimension_{key}.png")

    grid = np.linspace(-0.5, 1.5, 101, dtype="float32")
    xx, yy = np.meshgrid(grid, grid)
    surface = xor_model.predict(np.c_[xx.ravel(), yy.ravel()], verbose=0)
    fig, axes = _common.new_figure(size=(4, 3.6))
    ax = axes[0, 0]
    contour = ax.contourf(xx, yy, surface.reshape(xx.shape), levels=20, cmap="RdBu_r")
    fig.colorbar(contour, ax=ax)
    ax.scatter([0, 1], [0, 1], c="blue", marker="o", s=80, label="0")
    ax.scatter([0, 1], [1, 0], c="red", marker="^", s=80, label="1")
    ax.set_title("XOR: 2-4-1 tanh, P(class 1)", fontsize="medium")
    ax.legend(fontsize="small")
    _common.save_figure(fig, output / "xor.png")

    _common.plot_history_grid(
        histories, output, ncols=3, size=(4, 3), title_fontsize="medium"
    )


if __name__ == "__main__":
    main()
