"""MC dropout on Fashion-MNIST: Hands-On ML ch. 11, then calibration, OOD, conformal.

Trains the book's dropout MLP (Flatten, 3 x Dropout(0.2), 2 x Dense(100, relu),
softmax; SGD 0.01, momentum 0.9, Nesterov; 10 epochs on 55 000 images) and
scores the test set five to six ways: plain `predict`, `predict` with a
temperature, MC dropout (`mc_predict(to_mc(model), x, n_samples=100)`), MC +
temperature, a deep ensemble of `--ensemble-size` copies of the network trained
from different seeds (the first one is the model above), and the ensemble +
temperature: accuracy, NLL, Brier score and ECE with a bootstrap interval.

The 5 000 validation images are split in two halves, both unseen in training:
the first half fits every temperature (`calibrate` / `fit_temperature`, never
the test set), the second half calibrates the conformal prediction sets (LAC
and APS at alpha = 0.05 and 0.1; `conformal_sets`, `set_coverage`, `set_size`).

OOD without extra data: a second copy of the network is trained on 8 classes
only (`--ood-classes`, default sandal 5 and ankle boot 9: the two held-out
classes are footwear while sneaker stays in the training set, a hard, "near"
OOD task), and the test images of the held-out classes are scored against those
of the 8 others with `ood_metrics` (higher score = more OOD): 1 - max
probability (of `predict` and of the MC mean), the predictive entropy and the
mutual information of MC dropout.

Writes to `--output`: `model.keras` (the trained model, Keras dropout layers),
`model_calibrated.keras` (it plus its `Temperature` layer), `mc_samples.npz`
(the MC samples and mean of the first 64 test images), `predictions.npz` (every
probability, label, OOD score and prediction set the tables come from),
`reliability.png`, `ood_roc.png`, `set_sizes.png`, `results.md` and
`results.json`.

    python examples/mc_dropout_fashion_mnist.py --quick --dataset fashion_mnist \
        --output outputs/mc_dropout_fashion_mnist
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from kerasx.uncertainty import (
    apply_temperature,
    brier_score,
    calibrate,
    conformal_sets,
    ensemble_predict,
    expected_calibration_error,
    fit_temperature,
    mc_predict,
    negative_log_likelihood,
    ood_metrics,
    set_coverage,
    set_size,
    to_mc,
)

SAVED_ROWS = 64
ALPHAS = (0.05, 0.1)
METHODS = ("lac", "aps")
#: The predictions the conformal sets are built from (keys of `probabilities`).
CONFORMAL_PREDICTORS = ("predict", "mc_dropout")
#: OOD scores, higher = more out-of-distribution; the three MC ones are plotted.
OOD_SCORES = {
    "max_prob_predict": "1 - max probability (predict)",
    "max_prob": "1 - max probability (MC mean)",
    "entropy": "predictive entropy (MC)",
    "mutual_information": "mutual information (MC)",
}
ROC_SCORES = ("max_prob", "entropy", "mutual_information")
VARIANT_NAMES = {
    "predict": "predict",
    "predict_temperature": "predict + temperature",
    "mc_dropout": "MC dropout",
    "mc_dropout_temperature": "MC dropout + temperature",
    "ensemble": "ensemble",
    "ensemble_temperature": "ensemble + temperature",
}


def build_parser():
    parser = _common.make_parser(
        __doc__.splitlines()[0],
        default_dataset="fashion_mnist",
        default_epochs=10,
        default_output="outputs/mc_dropout_fashion_mnist",
        quick_epochs=2,
    )
    parser.add_argument("--mc-samples", type=int, default=100)
    parser.add_argument("--dropout-rate", type=float, default=0.2)
    parser.add_argument(
        "--ensemble-size",
        type=int,
        default=3,
        help="members of the deep ensemble (>= 2; the first is the main model)",
    )
    parser.add_argument(
        "--ood-classes",
        default="5,9",
        help="comma-separated classes held out of the OOD model's training",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples of the ECE's 95 %% interval",
    )
    return parser


def build_model(input_shape, num_classes: int, rate: float) -> keras.Model:
    """The book's MLP with a Dropout before each Dense layer."""
    init = "he_normal"
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dropout(rate),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            keras.layers.Dropout(rate),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            keras.layers.Dropout(rate),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def train(x, y, num_classes, args, seed, validation_data=None) -> keras.Model:
    """One copy of the book's network, trained from `seed`."""
    keras.utils.set_random_seed(seed)
    model = build_model(x.shape[1:], num_classes, args.dropout_rate)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
        metrics=["accuracy"],
    )
    model.fit(
        x,
        y,
        epochs=args.epochs,
        validation_data=validation_data,
        verbose=args.verbose,
    )
    return model


def scores(y: np.ndarray, probs: np.ndarray, args) -> dict[str, float]:
    ece = expected_calibration_error(y, probs, bootstrap=args.bootstrap, seed=args.seed)
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "nll": negative_log_likelihood(y, probs),
        "brier": brier_score(y, probs),
        "ece": ece.value,
        "ece_low": ece.low,
        "ece_high": ece.high,
    }


def roc_points(scores_in: np.ndarray, scores_out: np.ndarray):
    """(FPR, TPR) at every distinct threshold, OOD positive, from (0, 0) to (1, 1).

    Tied scores form one threshold (one point), as in `ood_metrics`.
    """
    scores = np.concatenate([scores_out, scores_in])
    is_out = np.r_[np.ones(len(scores_out)), np.zeros(len(scores_in))]
    order = np.argsort(-scores, kind="stable")
    scores, is_out = scores[order], is_out[order]
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.r_[0.0, np.cumsum(is_out)[ends]]
    false_positives = np.r_[0.0, ends + 1.0 - true_positives[1:]]
    return false_positives / len(scores_in), true_positives / len(scores_out)


def split_validation(data: _common.Split):
    """The validation images in two halves: temperatures, conformal calibration."""
    half = len(data.x_valid) // 2
    return (
        (data.x_valid[:half], data.y_valid[:half]),
        (data.x_valid[half:], data.y_valid[half:]),
    )


def main(argv: list[str] | None = None) -> dict:
    """Trains, compares the predictions, runs the OOD and conformal experiments."""
    parser = build_parser()
    args = _common.parse(parser, argv)
    if args.ensemble_size < 2:
        parser.error(f"--ensemble-size must be >= 2, got {args.ensemble_size}")
    data = _common.load_split(args.dataset, limit=args.limit)
    ood_classes = sorted({int(c) for c in args.ood_classes.split(",")})
    if not ood_classes or min(ood_classes) < 0 or max(ood_classes) >= data.num_classes:
        parser.error(f"--ood-classes must name classes in [0, {data.num_classes})")
    if len(ood_classes) >= data.num_classes - 1:
        parser.error("--ood-classes must leave at least 2 classes to train on")
    print(f"{args.dataset}: {data.describe()}")
    (x_temp, y_temp), (x_cal, y_cal) = split_validation(data)
    y_test = data.y_test

    start = time.perf_counter()
    model = train(
        data.x_train,
        data.y_train,
        data.num_classes,
        args,
        args.seed,
        validation_data=(x_temp, y_temp),
    )
    train_s = time.perf_counter() - start
    model.save(args.output / "model.keras")

    # One call per prediction over the three splits, then cut into parts.
    x_all = np.concatenate([x_temp, x_cal, data.x_test])
    parts = np.cumsum([len(x_temp), len(x_cal)])

    def cut(values):
        return dict(zip(("temp", "cal", "test"), np.split(values, parts), strict=True))

    plain = cut(model.predict(x_all, verbose=0))
    start = time.perf_counter()
    result = mc_predict(
        to_mc(model),
        x_all,
        n_samples=args.mc_samples,
        seed=args.seed,
        return_samples=True,
    )
    mc_s = time.perf_counter() - start
    test_rows = slice(parts[-1], None)
    np.savez(
        args.output / "mc_samples.npz",
        samples=result.samples[:, test_rows][:, :SAVED_ROWS],
        mean=result.mean[test_rows][:SAVED_ROWS],
    )
    mc = cut(result.mean.astype("float64"))

    members = [model] + [
        train(data.x_train, data.y_train, data.num_classes, args, args.seed + k)
        for k in range(1, args.ensemble_size)
    ]
    ensemble = cut(ensemble_predict(members, x_all).mean.astype("float64"))

    # Temperatures come from the first validation half only.
    # `calibrate` reads `model.input`, which a Sequential model lacks in Keras
    # 3.15: give it the same layers as a Functional model.
    functional = keras.Model(model.inputs[0], model.outputs[0])
    calibrated = calibrate(functional, x_temp, y_temp)
    calibrated.save(args.output / "model_calibrated.keras")
    temperatures = {
        "predict": float(calibrated.layers[-1].temperature),
        "mc_dropout": fit_temperature(mc["temp"], y_temp),
        "ensemble": fit_temperature(ensemble["temp"], y_temp),
    }
    probabilities = {}
    for name, split in (("predict", plain), ("mc_dropout", mc), ("ensemble", ensemble)):
        probabilities[name] = {key: np.asarray(value) for key, value in split.items()}
        probabilities[f"{name}_temperature"] = {
            key: apply_temperature(value, temperatures[name])
            for key, value in split.items()
        }
    calibration = {
        name: scores(y_test, probs["test"], args)
        for name, probs in probabilities.items()
    }

    correct = result.mean[test_rows].argmax(axis=1) == y_test
    predicted = result.mean[test_rows].argmax(axis=1)
    std_of_prediction = result.std[test_rows][np.arange(len(predicted)), predicted]
    uncertainty = {}
    for name, values in [
        ("predictive_entropy", result.predictive_entropy[test_rows]),
        ("mutual_information", result.mutual_information[test_rows]),
        ("variation_ratio", result.variation_ratio[test_rows]),
        ("std_of_predicted_class", std_of_prediction),
    ]:
        uncertainty[name] = {
            "correct": float(values[correct].mean()) if correct.any() else None,
            "misclassified": float(values[~correct].mean())
            if (~correct).any()
            else None,
        }

    conformal, sets_saved = [], {}
    for predictor in CONFORMAL_PREDICTORS:
        cal_probs = probabilities[predictor]["cal"]
        test_probs = probabilities[predictor]["test"]
        for method in METHODS:
            for alpha in ALPHAS:
                sets = conformal_sets(
                    cal_probs,
                    y_cal,
                    test_probs,
                    alpha=alpha,
                    method=method,
                    seed=args.seed,
                )
                sets_saved[f"sets_{predictor}_{method}_{alpha}"] = sets
                conformal.append(
                    {
                        "predictor": predictor,
                        "method": method,
                        "alpha": alpha,
                        "coverage": set_coverage(sets, y_test),
                        "mean_size": set_size(sets),
                        "empty": float(np.mean(sets.sum(axis=1) == 0)),
                    }
                )

    ood, ood_arrays = ood_experiment(data, ood_classes, args)

    report = {
        "example": "mc_dropout_fashion_mnist",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seed": args.seed,
        "quick": bool(args.quick),
        "limit": args.limit,
        "mc_samples": args.mc_samples,
        "ensemble_size": args.ensemble_size,
        "bootstrap": args.bootstrap,
        "n_train": len(data.x_train),
        "n_temperature": len(y_temp),
        "n_calibration": len(y_cal),
        "n_test": len(y_test),
        "train_seconds": round(train_s, 1),
        "mc_predict_seconds": round(mc_s, 2),
        "predict": calibration["predict"],
        "mc_dropout": calibration["mc_dropout"],
        "uncertainty": uncertainty,
        "misclassified": int((~correct).sum()),
        "temperatures": temperatures,
        "calibration": calibration,
        "conformal": conformal,
        "ood": ood,
    }
    np.savez(
        args.output / "predictions.npz",
        y_temperature=y_temp,
        y_calibration=y_cal,
        y_test=y_test,
        **{
            f"{name}_{key}": value
            for name, probs in probabilities.items()
            for key, value in probs.items()
        },
        **sets_saved,
        **ood_arrays,
    )
    table = format_report(report, data, args)
    print(f"\n{table}\n")
    (args.output / "results.md").write_text(table + "\n")
    _common.write_results(args, report)
    plot(args.output, y_test, probabilities, ood_arrays, sets_saved)
    return report


def ood_experiment(data: _common.Split, ood_classes: list[int], args):
    """Trains on the other classes, scores held-out-class test images as OOD."""
    in_classes = [c for c in range(data.num_classes) if c not in ood_classes]
    relabel = np.full(data.num_classes, -1)
    relabel[in_classes] = np.arange(len(in_classes))
    keep = np.isin(data.y_train, in_classes)
    model = train(
        data.x_train[keep],
        relabel[data.y_train[keep]],
        len(in_classes),
        args,
        args.seed,
    )
    is_out = np.isin(data.y_test, ood_classes)
    plain = model.predict(data.x_test, verbose=0)
    result = mc_predict(
        to_mc(model), data.x_test, n_samples=args.mc_samples, seed=args.seed
    )
    ood_scores = {
        "max_prob_predict": 1.0 - plain.max(axis=1),
        "max_prob": 1.0 - result.mean.max(axis=1),
        "entropy": result.predictive_entropy,
        "mutual_information": result.mutual_information,
    }
    arrays = {"ood_is_out": is_out}
    metrics = {}
    for name, values in ood_scores.items():
        values = np.asarray(values, dtype=np.float64)
        arrays[f"ood_score_{name}"] = values
        metrics[name] = ood_metrics(values[~is_out], values[is_out])
    in_labels = relabel[data.y_test[~is_out]]
    report = {
        "in_classes": in_classes,
        "out_classes": ood_classes,
        "n_train": int(keep.sum()),
        "n_in": int((~is_out).sum()),
        "n_out": int(is_out.sum()),
        "in_accuracy_mc": float(
            np.mean(result.mean[~is_out].argmax(axis=1) == in_labels)
        ),
        "scores": metrics,
    }
    return report, arrays


def format_report(report: dict, data: _common.Split, args) -> str:
    """Markdown tables: calibration, OOD, conformal sets, MC uncertainty."""
    confidence = "95 % bootstrap interval"
    lines = [
        f"MC dropout ({args.mc_samples} samples), ensemble of {args.ensemble_size} "
        f"on {args.dataset}: {data.describe()}; backend {report['backend']}, "
        f"Keras {keras.__version__}; epochs {args.epochs}; seed {args.seed}"
        + ("; --quick" if args.quick else "")
        + (f"; --limit {args.limit}" if args.limit else ""),
        f"Temperatures fitted on {report['n_temperature']} validation images; "
        f"conformal sets calibrated on the other {report['n_calibration']}.",
        "",
        f"| predictions (test set) | temperature | accuracy | NLL | Brier | "
        f"ECE (15 bins) | ECE {confidence} |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in report["calibration"].items():
        base = name.removesuffix("_temperature")
        temperature = (
            f"{report['temperatures'][base]:.4f}"
            if name.endswith("_temperature")
            else ""
        )
        lines.append(
            f"| {VARIANT_NAMES[name]} | {temperature} | {row['accuracy']:.4f} | "
            f"{row['nll']:.4f} | {row['brier']:.4f} | {row['ece']:.4f} | "
            f"[{row['ece_low']:.4f}, {row['ece_high']:.4f}] |"
        )
    ood = report["ood"]
    names = ", ".join(data.class_names[c] for c in ood["out_classes"])
    lines += [
        "",
        f"OOD: trained on {len(ood['in_classes'])} classes ({ood['n_train']} images, "
        f"MC accuracy {ood['in_accuracy_mc']:.4f} on their {ood['n_in']} test images); "
        f"{ood['n_out']} test images of {names} as OOD (positive class).",
        "",
        "| OOD score (higher = more OOD) | AUROC | AUPR-in | AUPR-out "
        "| FPR at 95 % TPR |",
        "|---|---|---|---|---|",
    ]
    for name, label in OOD_SCORES.items():
        m = ood["scores"][name]
        lines.append(
            f"| {label} | {m['auroc']:.4f} | {m['aupr_in']:.4f} | "
            f"{m['aupr_out']:.4f} | {m['fpr_at_95_tpr']:.4f} |"
        )
    lines += [
        "",
        "| conformal sets (test set) | method | alpha | target coverage | coverage | "
        "mean set size | empty sets |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["conformal"]:
        lines.append(
            f"| {VARIANT_NAMES[row['predictor']]} | {row['method'].upper()} | "
            f"{row['alpha']} | {1 - row['alpha']:.2f} | {row['coverage']:.4f} | "
            f"{row['mean_size']:.3f} | {row['empty']:.4f} |"
        )
    lines += [
        "",
        "| uncertainty (MC, mean) | correct | misclassified |",
        "|---|---|---|",
    ]
    for key, value in report["uncertainty"].items():
        lines.append(
            f"| {key} | {_common.format_cell(value['correct'])} | "
            f"{_common.format_cell(value['misclassified'])} |"
        )
    return "\n".join(lines)


def plot(output: Path, y_test, probabilities, ood_arrays, sets_saved):
    """`reliability.png`, `ood_roc.png` and `set_sizes.png`."""
    from kerasx.plotting import reliability_diagram

    fig, axes = _common.new_figure(3, size=(4.6, 4.4))
    for ax, name in zip(axes[0], ("predict", "mc_dropout", "ensemble"), strict=True):
        curves = {
            VARIANT_NAMES[name]: probabilities[name]["test"],
            "+ temperature": probabilities[f"{name}_temperature"]["test"],
        }
        reliability_diagram(y_test, curves, ax=ax, title=VARIANT_NAMES[name])
        ax.legend(loc="upper left", fontsize="small")
    _common.save_figure(fig, output / "reliability.png")

    fig, axes = _common.new_figure(size=(5, 4.6))
    ax = axes[0, 0]
    is_out = ood_arrays["ood_is_out"]
    for name in ROC_SCORES:
        values = ood_arrays[f"ood_score_{name}"]
        fpr, tpr = roc_points(values[~is_out], values[is_out])
        auroc = np.trapezoid(tpr, fpr)
        ax.plot(fpr, tpr, label=f"{OOD_SCORES[name]}, AUROC {auroc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
    ax.axhline(0.95, color="black", linewidth=0.6, linestyle=":", label="TPR 0.95")
    ax.set(
        xlabel="false-positive rate (in-distribution flagged)",
        ylabel="true-positive rate (OOD flagged)",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, alpha=0.3)
    _common.save_figure(fig, output / "ood_roc.png")

    fig, axes = _common.new_figure(2, size=(4.6, 3.6))
    n_classes = probabilities["predict"]["test"].shape[1]
    sizes = np.arange(n_classes + 1)
    width = 0.8 / len(ALPHAS)
    for ax, method in zip(axes[0], METHODS, strict=True):
        for index, alpha in enumerate(ALPHAS):
            counts = np.bincount(
                sets_saved[f"sets_mc_dropout_{method}_{alpha}"].sum(axis=1),
                minlength=n_classes + 1,
            )
            ax.bar(
                sizes + (index - (len(ALPHAS) - 1) / 2) * width,
                counts / counts.sum(),
                width=width,
                label=f"alpha = {alpha}",
            )
        ax.set(
            xlabel="set size (classes)",
            ylabel="fraction of test images",
            title=f"{method.upper()} sets, MC dropout",
            xticks=sizes,
        )
        ax.legend(fontsize="small")
        ax.grid(True, axis="y", alpha=0.3)
    _common.save_figure(fig, output / "set_sizes.png")


if __name__ == "__main__":
    main()
