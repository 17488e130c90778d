"""End-to-end benchmark: the compiled train step with and without the fused layer.

What a user sees is the training step, not the layer, so this times
`model.train_on_batch` in the backend's default `fit` mode (`jit_compile="auto"`:
a graph without XLA on TensorFlow when no GPU is present, `jax.jit` on JAX,
eager on torch) and with `jit_compile=True`. Two models:

- `cnn`: `build_cnn((28, 28, 1), 10, filters=(32, 64, 128))`, batch 128;
  `fused` is the same builder with `fused_bn=True`, `no_bn` has
  `batch_norm=False` (what BatchNorm costs at all).
- `mlp`: `build_mlp((28, 28), 10, batch_norm="before")` (20 x Dense(100) + BN +
  ELU), batch 256; `fused` is `kerasx.transforms.fuse_batchnorm_activation` of
  it, `no_bn` has `batch_norm=None`.

`--policy` sets the Keras dtype policy of every variant (`float32`,
`mixed_bfloat16`, `mixed_float16`; Keras compiles `mixed_float16` models with
loss scaling). A policy the backend cannot train with on this machine (a tiny
probe step fails) is refused with the backend's reason before anything is
timed.

The variants of one case live in one process and alternate step by step (a
rotating order, after warm-up), so machine drift hits them alike; medians over
the alternations. Ratios: `speedup = plain_ms / fused_ms` (> 1: the fused layer
is faster), `bn_limit = plain_ms / no_bn_ms` (the speedup removing BatchNorm
entirely would give) and `share_of_bn_cost_removed = (plain - fused) /
(plain - no_bn)`.

    KERAS_BACKEND=tensorflow python benchmarks/train_step.py
    python benchmarks/train_step.py --backend jax --alternations 60
    python benchmarks/train_step.py --tiny      # smoke test, seconds
    python benchmarks/train_step.py --policy mixed_bfloat16

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

MODES = {"default": "auto", "jit": True}
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# JAX's default mode is already `jax.jit` (`"auto"` resolves to True there), so
# `jit` would repeat it; torch's `jit_compile=True` is `torch.compile`, minutes
# of compilation on a small CPU, so it runs only when asked for.
DEFAULT_MODES = {"tensorflow": ("default", "jit"), "jax": ("default",)}
SIZES = {
    "full": {
        "cnn": dict(batch=128, input_shape=(28, 28, 1), filters=(32, 64, 128)),
        "mlp": dict(batch=256, input_shape=(28, 28), hidden_units=(100,) * 20),
    },
    "tiny": {
        "cnn": dict(batch=8, input_shape=(8, 8, 1), filters=(4, 8)),
        "mlp": dict(batch=16, input_shape=(4, 4), hidden_units=(8,) * 2),
    },
}


def _cnn_variants(config):
    from kerasx.models import build_cnn

    def build(**kwargs):
        return build_cnn(config["input_shape"], 10, filters=config["filters"], **kwargs)

    return {
        "plain": build,
        "fused": lambda: build(fused_bn=True),
        "no_bn": lambda: build(batch_norm=False),
    }


def _mlp_variants(config):
    from kerasx.models import build_mlp
    from kerasx.transforms import fuse_batchnorm_activation

    def build(batch_norm):
        return build_mlp(
            config["input_shape"],
            10,
            hidden_units=config["hidden_units"],
            batch_norm=batch_norm,
        )

    return {
        "plain": lambda: build("before"),
        "fused": lambda: fuse_batchnorm_activation(build("before")),
        "no_bn": lambda: build(None),
    }


VARIANTS = {"cnn": _cnn_variants, "mlp": _mlp_variants}


def _data(config, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(config["batch"], *config["input_shape"])).astype("float32")
    y = rng.integers(0, 10, size=(config["batch"],))
    return x, y


def _compiled(build, jit_compile, policy="float32"):
    import keras

    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build()
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit_compile,
    )
    return model


def policy_refusal(policy):
    """None if one tiny train step of each model runs under `policy`, else why not."""
    x_cnn, y_cnn = _data(SIZES["tiny"]["cnn"])
    x_mlp, y_mlp = _data(SIZES["tiny"]["mlp"])
    probes = {"cnn": (x_cnn, y_cnn), "mlp": (x_mlp, y_mlp)}
    try:
        for case, (x, y) in probes.items():
            build = VARIANTS[case](SIZES["tiny"][case])["fused"]
            _compiled(build, "auto", policy).train_on_batch(x, y)
    except Exception as error:  # the backend's own refusal, reported verbatim
        return f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    return None


def time_case(case, mode, config, alternations, warmup, policy="float32"):
    """Median train-step milliseconds of each variant, interleaved step by step."""
    x, y = _data(config)
    models = {
        name: _compiled(build, MODES[mode], policy)
        for name, build in VARIANTS[case](config).items()
    }
    for model in models.values():  # tracing, compilation, first-touch memory
        for _ in range(warmup):
            model.train_on_batch(x, y)
    names = list(models)
    times = {name: [] for name in names}
    for step in range(alternations):
        # Rotate the order so that no variant always runs right after another.
        for name in names[step % 3 :] + names[: step % 3]:
            start = time.perf_counter()
            models[name].train_on_batch(x, y)  # returns host floats: synchronous
            times[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    bn_cost = ms["plain"] - ms["no_bn"]
    return {
        "case": case,
        "mode": mode,
        "policy": policy,
        "compute_dtype": models["fused"].compute_dtype,
        "jit_compile": models["plain"].jit_compile,
        "batch": config["batch"],
        "plain_ms": round(ms["plain"], 3),
        "fused_ms": round(ms["fused"], 3),
        "no_bn_ms": round(ms["no_bn"], 3),
        "speedup": round(ms["plain"] / ms["fused"], 3),
        "bn_limit": round(ms["plain"] / ms["no_bn"], 3),
        "share_of_bn_cost_removed": (
            round((ms["plain"] - ms["fused"]) / bn_cost, 3) if bn_cost > 0 else None
        ),
        # Spread of the per-step ratio, to read the noise next to the medians.
        "speedup_iqr": _ratio_quartiles(times["plain"], times["fused"]),
    }


def _ratio_quartiles(plain, fused):
    ratios = sorted(p / f for p, f in zip(plain, fused, strict=True))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return [round(quartiles[0], 3), round(quartiles[-1], 3)]


def select_backend(parser: argparse.ArgumentParser, requested: str | None) -> str:
    """Sets `KERAS_BACKEND` to `requested` (before Keras is imported); the backend."""
    if requested:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != requested:
            parser.error("--backend must be chosen before Keras is imported")
        os.environ["KERAS_BACKEND"] = requested
    import keras

    return keras.backend.backend()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        help="Keras backend (default: KERAS_BACKEND); one backend per process.",
    )
    parser.add_argument("--cases", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES))
    parser.add_argument("--alternations", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default="float32",
        help="Keras dtype policy of every model (default: float32).",
    )
    args = parser.parse_args(argv)
    backend = select_backend(parser, args.backend)
    import keras  # imported by select_backend, with the chosen backend

    size = "tiny" if args.tiny else "full"
    alternations = args.alternations or (3 if args.tiny else 40)
    warmup = args.warmup or (1 if args.tiny else 5)
    modes = args.modes or DEFAULT_MODES.get(backend, ("default",))
    cases = args.cases or sorted(VARIANTS)
    if args.policy != "float32":
        refusal = policy_refusal(args.policy)
        if refusal is not None:
            parser.error(
                f"--policy {args.policy} does not train on the {backend} backend "
                f"on this machine: {refusal}"
            )
    results = []
    for case in cases:
        for mode in modes:
            results.append(
                time_case(
                    case, mode, SIZES[size][case], alternations, warmup, args.policy
                )
            )
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress
    report = {
        "benchmark": "train_step",
        "backend": backend,
        "keras": keras.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "size": size,
        "policy": args.policy,
        "alternations": alternations,
        "warmup": warmup,
        "speedup": "plain_ms / fused_ms (>1: the fused layer is faster)",
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
