#!/usr/bin/env bash
# Layer and train-step benchmarks of BatchNormActivation on a GPU machine, one command.
#
#   PYTHON=/path/to/venv/bin/python bash benchmarks/gpu.sh [OUTPUT_DIR]
#
# Needs a Python with kerasx installed (`pip install -e .`) and a GPU build of
# JAX (`jax[cuda12]`) and/or torch; a backend whose GPU build is missing is
# skipped with a message, never run on the CPU by mistake. Each benchmark runs in
# its own process (one Keras backend per process) and writes one JSON file to
# OUTPUT_DIR (default: $OUT if set, else benchmarks/gpu-results); the JSON is
# also printed. Full sizes: (128, 112, 112, 64) and (32768, 4096) for the layer,
# float32 and bfloat16; the CNN and MLP train steps of benchmarks/train_step.py.
#
# Bandwidth: each backend's device copy bandwidth, the physical limit of a
# memory-bound layer, is measured as /work/shared/ANCHORS.md does it (JAX:
# `jax.jit(lambda a: a * 2)` on 1 GiB float32; torch: the same `a * 2` into a
# preallocated output, `torch.mul(a, 2, out=b)`), counting one read and one write
# per element, median of 20 after warm-up. Each fwd+bwd row of the layer
# benchmark is then printed as achieved bandwidth, five tensor passes (read x,
# write y, read x and dy, write dx) over the median time, and as a percent of
# the copy bandwidth, for Keras and kerasx (bandwidth_<backend>.json).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUTPUT_DIR="${1:-${OUT:-benchmarks/gpu-results}}"
mkdir -p "$OUTPUT_DIR"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # report what the step needs, not 75 % of the card

"$PYTHON" - <<'PY' || true
import shutil, subprocess
if shutil.which("nvidia-smi"):
    subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                    "--format=csv,noheader"], check=False)
PY

has_gpu() {
  case "$1" in
    jax) "$PYTHON" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" ;;
    torch) "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ;;
  esac
}

copy_bandwidth() {  # copy_bandwidth BACKEND -> bytes per second on stdout
  KERAS_BACKEND="$1" "$PYTHON" - "$1" <<'PY'
import statistics, sys, time

backend = sys.argv[1]
n = 2**30 // 4  # 1 GiB of float32
times = []
if backend == "jax":
    import jax, jax.numpy as jnp

    double = jax.jit(lambda a: a * 2)
    a = jnp.ones((n,), jnp.float32)
    for _ in range(5):
        double(a).block_until_ready()
    for _ in range(20):
        start = time.perf_counter()
        double(a).block_until_ready()
        times.append(time.perf_counter() - start)
else:
    import torch

    a = torch.ones(n, dtype=torch.float32, device="cuda")
    b = torch.empty_like(a)
    for _ in range(5):
        torch.mul(a, 2, out=b)
    torch.cuda.synchronize()
    for _ in range(20):
        start = time.perf_counter()
        torch.mul(a, 2, out=b)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
print(2 * n * 4 / statistics.median(times))  # one read, one write per element
PY
}

bandwidth_report() {  # bandwidth_report BACKEND COPY_BYTES_PER_S LAYER_JSON
  "$PYTHON" - "$@" <<'PY'
import json, math, sys

backend, copy_bw, layer_json = sys.argv[1], float(sys.argv[2]), sys.argv[3]
itemsize = {"float32": 4, "bfloat16": 2, "float16": 2}
with open(layer_json) as f:
    layer = json.load(f)
rows = []
print(f"copy bandwidth ({backend}): {copy_bw / 1e12:.3f} TB/s", file=sys.stderr)
print(f"{'shape':>22} {'dtype':>8} {'mode':>6} {'keras %':>8} {'kerasx %':>9}",
      file=sys.stderr)
for row in layer["timings"]:
    if row["pass"] != "fwd+bwd":
        continue
    passes = 5 * math.prod(row["shape"]) * itemsize[row["dtype"]]
    achieved = {name: passes / (row[f"{name}_ms"] / 1e3) for name in ("keras", "kerasx")}
    percent = {name: round(100 * bw / copy_bw, 1) for name, bw in achieved.items()}
    rows.append({**row, "keras_tb_s": round(achieved["keras"] / 1e12, 3),
                 "kerasx_tb_s": round(achieved["kerasx"] / 1e12, 3),
                 "keras_pct_of_copy": percent["keras"],
                 "kerasx_pct_of_copy": percent["kerasx"]})
    print(f"{str(tuple(row['shape'])):>22} {row['dtype']:>8} {row['mode']:>6} "
          f"{percent['keras']:>8} {percent['kerasx']:>9}", file=sys.stderr)
print(json.dumps({"benchmark": "bandwidth", "backend": backend,
                  "copy_tb_s": round(copy_bw / 1e12, 3),
                  "passes": "5 tensor passes for fwd+bwd (read x, write y, read x and dy, write dx)",
                  "rows": rows}, indent=1))
PY
}

run() {  # run NAME BACKEND ARGS...
  local name="$1" backend="$2"
  shift 2
  echo "== $name ($backend)" >&2
  KERAS_BACKEND="$backend" "$PYTHON" "$@" > "$OUTPUT_DIR/$name.json"
  cat "$OUTPUT_DIR/$name.json"
}

for backend in jax torch; do
  if ! has_gpu "$backend" 2>/dev/null; then
    echo "== skipping $backend: no GPU build of $backend found for $PYTHON" >&2
    continue
  fi
  run "layer_$backend" "$backend" benchmarks/batch_norm_activation.py --repeats 30
  echo "== copy bandwidth ($backend)" >&2
  copy_bw=$(copy_bandwidth "$backend" | tail -n 1)
  bandwidth_report "$backend" "$copy_bw" "$OUTPUT_DIR/layer_$backend.json" \
    > "$OUTPUT_DIR/bandwidth_$backend.json"
  cat "$OUTPUT_DIR/bandwidth_$backend.json"
  run "train_step_$backend" "$backend" benchmarks/train_step.py --alternations 60
done
echo "== results in $OUTPUT_DIR" >&2
