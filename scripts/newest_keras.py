"""Prints the newest Keras release and whether the `keras` pin admits it.

CI installs the newest Keras that the pin in `pyproject.toml` admits and tests
only that one, so the pin stops at the next minor release. This says when a
newer release exists (raise the pin once the suite passes on it, after
checking `src/kerasx/_keras_internals.py`). Informational: it always exits 0,
also offline (the package index is asked with `pip index versions`, which
gives up after `--timeout` seconds).

Usage: `python scripts/newest_keras.py [--timeout SECONDS]`
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli is in the `dev` extra.
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def keras_pin(root: Path = ROOT):
    """The version specifier of the `keras` dependency in `pyproject.toml`."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    for text in pyproject["project"]["dependencies"]:
        requirement = Requirement(text)
        if requirement.name == "keras":
            return requirement.specifier
    raise SystemExit("pyproject.toml has no keras dependency")


def newest_release(timeout: float) -> Version | None:
    """The newest Keras release on the package index; None when unreachable."""
    command = [sys.executable, "-m", "pip", "index", "versions", "keras"]
    command += ["--retries", "0", "--timeout", str(timeout)]
    try:
        output = subprocess.run(
            command, capture_output=True, text=True, timeout=2 * timeout, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^keras \(([^)]+)\)", output, re.MULTILINE)
    return Version(match.group(1)) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    pin = keras_pin()
    installed = importlib.metadata.version("keras")
    print(f"keras pin: keras{pin}; installed and tested: {installed}")
    newest = newest_release(args.timeout)
    if newest is None:
        print("newest Keras release: unknown (package index not reachable)")
    elif pin.contains(newest, prereleases=True):
        print(f"newest Keras release: {newest}, admitted by the pin")
    else:
        print(
            f"newest Keras release: {newest}, NOT admitted by the pin: run the "
            "suite on it, then raise the pin in pyproject.toml"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
