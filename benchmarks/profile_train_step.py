"""Where the train step's BatchNorm cost is: op and kernel counts per BN layer.

A BatchNorm on a (256, 100) float32 tensor moves about 100 KB, so on a CPU its
cost in the train step is the number of ops the runtime dispatches (and, on
JAX, the kernels XLA emits), not bytes. This counts them, which is independent
of the machine's load, for the three variants of `benchmarks/train_step.py`
(`plain`: Keras `BatchNormalization` + `Activation`; `fused`: kerasx's
`BatchNormActivation` via `fuse_batchnorm_activation` / `fused_bn=True`;
`no_bn`: no BatchNorm at all):

- TensorFlow: the ops of the traced train step's graph (`tf.function` of
  `model.train_step`, forward + gradient + optimizer update + metrics, the graph
  the default `fit` mode runs without XLA, before Grappler rewrites it), total
  and by op type.
- JAX: the optimized HLO of `jax.jit(model.train_step)` (what `fit` runs):
  instructions of the entry computation (each one a kernel or buffer operation
  the runtime executes), how many of those are `fusion`s, and all instructions
  of all computations.

Per BN layer = (count with BN - count without BN) / number of BN layers. With
`--timing` (TensorFlow only) the step also runs a few times under
`tf.profiler` and the executor time per op type is reported (noisy on a loaded
machine: read it as ratios).

    KERAS_BACKEND=tensorflow python benchmarks/profile_train_step.py
    python benchmarks/profile_train_step.py --backend jax --cases mlp cnn
    python benchmarks/profile_train_step.py --tiny      # smoke test, seconds

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import platform
import re
import sys
from pathlib import Path

TOP_TYPES = 12


def _train_step_module():
    # The model builders and sizes are train_step.py's, so that the counts are
    # those of the steps it times.
    path = Path(__file__).resolve().parent / "train_step.py"
    spec = importlib.util.spec_from_file_location("_benchmark_train_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bn_layers(model):
    import keras

    from kerasx.layers import BatchNormActivation

    kinds = (keras.layers.BatchNormalization, BatchNormActivation)
    return sum(isinstance(layer, kinds) for layer in _all_layers(model))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # nested models / blocks
            yield from _all_layers(layer)


def _tf_counts(model, x, y):
    import tensorflow as tf

    step = tf.function(model.train_step)
    graph = step.get_concrete_function((tf.constant(x), tf.constant(y))).graph
    types = collections.Counter(op.type for op in graph.get_operations())
    return {"ops": sum(types.values()), "op_types": dict(types)}


def _tf_timing(model, x, y, steps, known):
    """Executor microseconds per op type over `steps` profiled steps."""
    import tempfile

    import tensorflow as tf

    step = tf.function(model.train_step)
    data = (tf.constant(x), tf.constant(y))
    step(data)
    logdir = tempfile.mkdtemp(prefix="kerasx_profile_")
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        step(data)
    tf.profiler.experimental.stop()
    return _xplane_op_times(logdir, known)


def _xplane_op_times(logdir, known):
    """Sums the TF op events by op type (None if unreadable).

    Op events are named "op_name:OpType"; only types in `known` (the traced
    graph's) or Grappler's fused ones (`_Fused...`) count, not the executor's
    own "Run"/"Process" spans that contain them.
    """
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        try:
            from tsl.profiler.protobuf import xplane_pb2
        except ImportError:
            return None
    files = list(Path(logdir).rglob("*.xplane.pb"))
    if not files:
        return None
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[0].read_bytes())
    totals = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # TF op events are named "op_name:OpType".
                op_type = name.rsplit(":", 1)[-1].strip()
                if ":" in name and (op_type in known or op_type.startswith("_Fused")):
                    totals[op_type] += event.duration_ps / 1e6
    return dict(totals) or None


_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?[\w.\-]+\s*=\s*\S.*?\s([\w\-]+)\(")


# Entry instructions that launch no kernel: arguments, literals, tuple plumbing.
_NOT_KERNELS = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}


def _jax_counts(model, x, y):
    import jax

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    text = jax.jit(model.train_step).lower(state, (x, y)).compile().as_text()
    entry_ops = collections.Counter()
    all_instructions = 0
    fused_computations = 0
    in_entry = False
    for line in text.splitlines():
        if line.startswith("ENTRY"):
            in_entry = True
            continue
        if line.startswith("}"):
            in_entry = False
            continue
        if re.match(r"^%?fused_computation|^%?[\w.\-]*fused[\w.\-]*\s.*\{$", line):
            fused_computations += 1
        match = _INSTRUCTION.match(line)
        if match:
            all_instructions += 1
            if in_entry:
                entry_ops[match.group(2)] += 1
    kernels = sum(n for op, n in entry_ops.items() if op not in _NOT_KERNELS)
    return {
        "entry_instructions": sum(entry_ops.values()),
        "kernels": kernels,
        "fusions": entry_ops.get("fusion", 0),
        "fused_computations": fused_computations,
        "all_instructions": all_instructions,
        "op_types": dict(entry_ops),
    }


def _per_bn(counts, no_bn, layers):
    return round((counts - no_bn) / layers, 2) if layers else None


# The fused layer's training kernel: the table's choice (what users get), then
# each other path forced (`kerasx.ops._use_kernel`, package-private for
# benchmarks) where it can run, to see what the alternatives would cost.
FORCED_PATHS = {
    "tensorflow": ("compiled", "fused_batch_norm"),
    "jax": ("compiled",),
}


def _count(model, x, y, backend, path):
    from kerasx.ops import _use_kernel

    with _use_kernel(path) as chosen:
        if backend == "tensorflow":
            counts = _tf_counts(model, x, y)
        else:
            counts = _jax_counts(model, x, y)
    counts["kernel"] = sorted(set(chosen))
    return counts


def profile_case(ts, case, config, backend, timing_steps=0):
    """Counts (and optionally TF executor time) of one model's variants."""
    x, y = ts._data(config)
    builds = ts.VARIANTS[case](config)
    variants = [("plain", "plain", None), ("fused", "fused", None)]
    variants += [(f"fused_{path}", "fused", path) for path in FORCED_PATHS[backend]]
    variants.append(("no_bn", "no_bn", None))
    rows, layers, models, skipped = {}, {}, {}, {}
    for name, build_name, path in variants:
        model = ts._compiled(builds[build_name], "auto")
        model.train_on_batch(x, y)  # builds the optimizer and metric variables
        try:
            rows[name] = _count(model, x, y, backend, path)
        except ValueError as error:  # a forced path that cannot run this call
            skipped[name] = str(error).splitlines()[0][:200]
            continue
        models[name] = (model, path)
        layers[name] = _bn_layers(model)
    keys = [k for k in rows["plain"] if k not in ("op_types", "kernel")]
    result = {"case": case, "batch": config["batch"], "bn_layers": layers["plain"]}
    if skipped:
        result["skipped"] = skipped
    bn_names = [name for name in rows if name != "no_bn"]
    for name in rows:
        for key in keys:
            result[f"{name}_{key}"] = rows[name][key]
        if name.startswith("fused"):
            result[f"{name}_kernel"] = rows[name]["kernel"]
    for name in bn_names:
        for key in keys:
            result[f"{name}_{key}_per_bn"] = _per_bn(
                rows[name][key], rows["no_bn"][key], layers[name]
            )
        types = collections.Counter(rows[name]["op_types"])
        types.subtract(rows["no_bn"]["op_types"])
        top = sorted(types.items(), key=lambda item: (-item[1], item[0]))
        result[f"{name}_op_types_per_bn"] = {
            op: round(n / layers[name], 2) for op, n in top[:TOP_TYPES] if n > 0
        }
    if timing_steps and backend == "tensorflow":
        result.update(_timing_rows(models, rows, x, y, timing_steps))
    return result


def _timing_rows(models, rows, x, y, steps):
    from kerasx.ops import _use_kernel

    known = set().union(*(row["op_types"] for row in rows.values()))
    times = {}
    for name, (model, path) in models.items():
        with _use_kernel(path):
            times[name] = _tf_timing(model, x, y, steps, known)
    result = {"timing_steps": steps}
    if not all(times.values()):
        result["executor_us_per_step"] = None  # profile not readable here
        return result
    total = {name: sum(t.values()) for name, t in times.items()}
    result["executor_us_per_step"] = {
        name: round(t / steps, 1) for name, t in total.items()
    }
    result["executor_ratio_over_no_bn"] = {
        name: round(t / total["no_bn"], 3) for name, t in total.items()
    }
    # The Dense matmuls are the same in every variant, yet their time swings
    # with the machine's load: the rest is where BatchNorm's time shows.
    rest = {
        name: sum(us for op, us in t.items() if "MatMul" not in op)
        for name, t in times.items()
    }
    result["executor_us_per_step_without_matmul"] = {
        name: round(t / steps, 1) for name, t in rest.items()
    }
    for name in models:
        if name == "no_bn":
            continue
        top = sorted(times[name].items(), key=lambda item: -item[1])
        result[f"{name}_executor_us_per_step_by_type"] = {
            op: round(us / steps, 1) for op, us in top[:TOP_TYPES]
        }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax"),
        help="Keras backend (default: KERAS_BACKEND); one backend per process.",
    )
    parser.add_argument("--cases", nargs="+", choices=("cnn", "mlp"))
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    parser.add_argument(
        "--timing",
        type=int,
        default=0,
        metavar="STEPS",
        help="TensorFlow: also profile STEPS steps for executor time per op type.",
    )
    args = parser.parse_args(argv)
    ts = _train_step_module()
    backend = ts.select_backend(parser, args.backend)
    import keras  # imported by select_backend, with the chosen backend

    if backend not in ("tensorflow", "jax"):
        parser.error(f"counts need the tensorflow or jax backend, not {backend}")
    size = "tiny" if args.tiny else "full"
    cases = args.cases or ["mlp"]
    results = []
    for case in cases:
        results.append(
            profile_case(ts, case, ts.SIZES[size][case], backend, args.timing)
        )
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress
    if backend == "tensorflow":
        import tensorflow as tf

        version = tf.__version__
        what = "ops of tf.function(model.train_step) graph, before Grappler"
    else:
        import jax

        version = jax.__version__
        what = "optimized HLO of jax.jit(model.train_step): entry instructions"
    report = {
        "benchmark": "profile_train_step",
        "backend": backend,
        "backend_version": version,
        "keras": keras.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "size": size,
        "counts": what,
        "per_bn": "(count - no_bn count) / bn_layers",
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
