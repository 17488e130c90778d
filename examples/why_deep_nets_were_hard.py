"""Why deep nets were hard: gradients, XOR, initialisation, dropout, ensembles.

1. Per-layer gradient norms of a deep MLP at initialisation, sigmoid vs tanh,
   relu, leaky relu and elu (vanishing gradients), then a few epochs of SGD each.
2. XOR: no linear model separates it; one hidden layer of 4 tanh units does.
3. Initialisation of a deep relu MLP: small random normal (stddev 0.05) vs
   Glorot uniform vs He normal.
4. Dropout at train vs test time: active in `fit` (and `model(x, training=True)`),
   off in `predict` / `evaluate`, so training accuracy reads lower than it is.
5. An ensemble of 5 MLPs (`kerasx.uncertainty.ensemble_predict`: the mean of
   their probabilities) vs the best single one.

Gradients are measured backend-agnostically: one `train_on_batch` with
`SGD(learning_rate=1)` moves every kernel by exactly minus its gradient, and the
weights are restored after. Writes `gradient_norms.png`, `xor.png`,
`learning_curves.png`, `val_accuracy.png`, `results.md`, `results.json`, the
dropout model (`dropout_mlp.keras`), the ensemble's members
(`ensemble_member<i>.keras`) and its test-set probabilities
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

from kerasx.models import build_mlp
from kerasx.uncertainty import ensemble_predict

ACTIVATIONS = [
    ("sigmoid", "glorot_uniform"),
    ("tanh", "glorot_uniform"),
    ("relu", "he_normal"),
    ("leaky_relu", "he_normal"),
    ("elu", "he_normal"),
]
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


def kernel_gradient_norms(model: keras.Model, x: np.ndarray, y: np.ndarray) -> list:
    """L2 norm of the loss gradient w.r.t. each Dense kernel, input side first.

    Uses only the public Keras API on any backend: with plain SGD at learning
    rate 1, one `train_on_batch` changes each weight by exactly `-gradient`.
    The model's weights are restored afterwards; it is left compiled with that
    SGD, so compile it again before training.
    """
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0),
        loss="sparse_categorical_crossentropy",
    )
    kernels = [
        layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Dense)
    ]
    before = [np.array(kernel.numpy()) for kernel in kernels]
    weights = model.get_weights()
    model.train_on_batch(x, y)
    after = [np.array(kernel.numpy()) for kernel in kernels]
    model.set_weights(weights)
    return [float(np.linalg.norm(b - a)) for b, a in zip(before, after, strict=True)]


def fit(model, data, args, *, optimizer, epochs=None):
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
    deep = (args.units,) * args.depth
    probe_x, probe_y = data.x_train[:256], data.y_train[:256]
    rows, histories, gradients, init_gradients = [], {}, {}, {}

    def deep_sgd_run(variant: str, activation: str, initializer: str) -> np.ndarray:
        """Per-layer gradient norms of a fresh deep MLP, then SGD training."""
        model = build_mlp(
            shape,
            classes,
            hidden_units=deep,
            activation=activation,
            kernel_initializer=initializer,
        )
        norms = kernel_gradient_norms(model, probe_x, probe_y)
        history, timer = fit(model, data, args, optimizer=keras.optimizers.SGD(0.01))
        histories[variant] = history
        rows.append(
            _common.row_from_history(
                variant,
                history,
                timer,
                **{"grad norm layer 1 / last": norms[0] / norms[-1]},
            )
        )
        return norms

    # 1. Gradient norms per activation, then training with plain SGD.
    for activation, initializer in ACTIVATIONS:
        gradients[activation] = deep_sgd_run(
            f"{args.depth}-layer {activation}, SGD", activation, initializer
        )

    # 2. XOR.
    xor, xor_model = xor_rows(args)
    rows += xor

    # 3. Initialisation of a deep relu network.
    for name, initializer in INITIALIZERS:
        init_gradients[name] = deep_sgd_run(f"relu, init {name}", "relu", initializer)

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

    plot(args.output, histories, gradients, init_gradients, xor_model)
    return _common.report(rows, args, f"Why deep nets were hard, on {args.dataset}")


def plot(output: Path, histories, gradients, init_gradients, xor_model) -> None:
    """Gradient norms per layer, the XOR decision surface, learning curves."""
    fig, axes = _common.new_figure(2, size=(5, 3.6))
    for ax, norms_by_name, title in [
        (axes[0, 0], gradients, "activation (at initialisation)"),
        (axes[0, 1], init_gradients, "relu, initialiser"),
    ]:
        for name, norms in norms_by_name.items():
            ax.semilogy(range(1, len(norms) + 1), norms, marker="o", label=name)
        ax.set(xlabel="Dense layer (1 = input side)", ylabel="‖∂loss/∂kernel‖")
        _common.integer_epochs(ax)
        ax.set_title(title, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    _common.save_figure(fig, output / "gradient_norms.png")

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
