"""Runs a distributed worker script in a fresh Python with 2 logical CPU devices.

TensorFlow fixes its logical devices when it first initialises them and JAX
reads `XLA_FLAGS` when it first starts its CPU client, so neither can be
configured inside the pytest process (which has already imported the
backend). Each worker runs its checks in one subprocess (imports cost
seconds) and writes what it measured to an `.npz` file; the tests compare
those numbers with independent NumPy float64 references in the parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TIMEOUT_SECONDS = 240


def _environment(backend: str, device_count: int) -> dict:
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=(
            env.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={device_count}"
        ).strip(),
    )
    return env


def _load(output: Path) -> dict:
    with np.load(output) as data:
        results = {key: data[key] for key in data.files if key != "errors"}
        results["errors"] = json.loads(str(data["errors"]))
    return results


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_processes(script: str, tmp_path: Path, num_processes: int = 2) -> list[dict]:
    """Runs `num_processes` JAX processes of `script` joined on 127.0.0.1.

    Each gets one CPU device and the arguments `OUT process PROCESS_ID PORT`.
    Every process is waited for with one shared deadline and killed if it is
    still running when another fails or the deadline passes, so a hung
    collective cannot outlive the test. Returns each process's results.
    """
    port = free_port()
    env = _environment("jax", 1)
    outputs = [tmp_path / f"{Path(script).stem}_{i}.npz" for i in range(num_processes)]
    logs = [tmp_path / f"process_{i}.log" for i in range(num_processes)]
    with contextlib.ExitStack() as stack:
        processes = []
        for i, (out, log) in enumerate(zip(outputs, logs, strict=True)):
            command = [sys.executable, str(HERE / script), str(out)]
            processes.append(
                subprocess.Popen(
                    [*command, "process", str(i), str(port)],
                    env=env,
                    stdout=stack.enter_context(open(log, "w")),
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + TIMEOUT_SECONDS
        try:
            while any(p.poll() is None for p in processes):
                if time.monotonic() > deadline or any(p.returncode for p in processes):
                    break
                time.sleep(0.2)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                process.wait()
    failures = [
        f"process {i} exited with {p.returncode}:\n{log.read_text()[-3000:]}"
        for i, (p, out, log) in enumerate(zip(processes, outputs, logs, strict=True))
        if p.returncode != 0 or not out.exists()
    ]
    if failures:
        raise RuntimeError("\n".join(failures))
    return [_load(out) for out in outputs]


def run_worker(
    script: str, backend: str, tmp_path: Path, args: tuple[str, ...] = ()
) -> dict:
    """Runs `tests/distributed/<script>` on `backend`; returns its results.

    Returns a dict with the worker's arrays and `"errors"`: a dict mapping a
    check name to the exception text it raised (checks are independent, so one
    failing check does not hide the others).
    """
    output = tmp_path / f"{Path(script).stem}.npz"
    completed = subprocess.run(
        [sys.executable, str(HERE / script), str(output), *args],
        env=_environment(backend, 2),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0 or not output.exists():
        raise RuntimeError(
            f"{script} exited with {completed.returncode}:\n{completed.stderr[-4000:]}"
        )
    return _load(output)


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
            where = traceback.format_exc(limit=-3)
            errors[check.__name__] = f"{type(error).__name__}: {error}\n{where}"
    save_results(path, results, errors)
