"""Runs a distributed worker script in a fresh Python with 2 logical CPU devices.

TensorFlow fixes its logical devices when it first initialises them and JAX
reads `XLA_FLAGS` when it first starts its CPU client, so neither can be
configured inside the pytest process (which has already imported the
backend). Each worker runs its checks in one subprocess (imports cost
seconds) and writes what it measured to an `.npz` file; the tests compare
those numbers with independent NumPy float64 references in the parent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TIMEOUT_SECONDS = 240


def run_worker(script: str, backend: str, tmp_path: Path) -> dict:
    """Runs `tests/distributed/<script>` on `backend`; returns its results.

    Returns a dict with the worker's arrays and `"errors"`: a dict mapping a
    check name to the exception text it raised (checks are independent, so one
    failing check does not hide the others).
    """
    output = tmp_path / f"{Path(script).stem}.npz"
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=(
            env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
        ).strip(),
    )
    completed = subprocess.run(
        [sys.executable, str(HERE / script), str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0 or not output.exists():
        raise RuntimeError(
            f"{script} exited with {completed.returncode}:\n{completed.stderr[-4000:]}"
        )
    with np.load(output) as data:
        results = {key: data[key] for key in data.files if key != "errors"}
        results["errors"] = json.loads(str(data["errors"]))
    return results


def save_results(path: str, results: dict, errors: dict) -> None:
    """Worker side: writes `results` (arrays) and `errors` (texts) to `path`."""
    arrays = {key: np.asarray(value) for key, value in results.items()}
    np.savez(path, errors=np.asarray(json.dumps(errors)), **arrays)


def run_checks(checks, path: str) -> None:
    """Worker side: runs every check, collecting arrays and errors, then saves."""
    results: dict = {}
    errors: dict = {}
    for check in checks:
        try:
            check(results)
        except Exception as error:
            errors[check.__name__] = f"{type(error).__name__}: {error}"
    save_results(path, results, errors)
