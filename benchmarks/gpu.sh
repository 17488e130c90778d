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
  run "train_step_$backend" "$backend" benchmarks/train_step.py --alternations 60
done
echo "== results in $OUTPUT_DIR" >&2
