"""Helpers for the example tests: load an example script, check tables and PNGs."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

#: The backend the end-to-end example runs use. Each example trains several
#: models; what it calls (builders, callbacks, the LR finder, MC prediction,
#: saving) is tested on every backend by the module tests, so the examples'
#: own claims are checked once, on the backend the README's demo uses.
EXAMPLE_BACKEND = "tensorflow"

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
DOCS_DIR = EXAMPLES_DIR.parent / "docs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes a uint8 array as a gzip idx file (magic 0 0 8 ndim, big-endian dims)."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class (0-9) is a bright horizontal band, plus noise.

    Class k lights rows 2k+4 .. 2k+6 (a light, easy signal) over uniform noise
    in [0, 80), so a small MLP reaches well above chance (0.1) in one epoch.
    """
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 80, size=(n, 28, 28)).astype(np.uint8)
    for k in range(10):
        images[labels == k, 2 * k + 4 : 2 * k + 7, 4:24] = 230
    return images, labels


def load_example(name: str) -> ModuleType:
    """Imports `examples/<name>.py` as a module (its directory on `sys.path`)."""
    if str(EXAMPLES_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR))
    path = EXAMPLES_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rendered_page(name: str) -> str:
    """`docs/examples/<name>.md` as MkDocs renders it (results markers filled)."""
    path = DOCS_DIR / "hooks" / "results.py"
    spec = importlib.util.spec_from_file_location("docs_results_hook", path)
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    markdown = (DOCS_DIR / "examples" / f"{name}.md").read_text(encoding="utf-8")
    return hook.render(markdown, DOCS_DIR)[0]


def assert_png(path: Path) -> None:
    """The file exists, starts with the PNG signature, and Pillow decodes it."""
    from PIL import Image

    assert path.is_file(), f"missing plot {path}"
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 100 and image.size[1] > 100


def read_results(output: Path, script: str) -> dict:
    """`output/results.json` without its `run` record, after checking that.

    The record names the command (with the backend and the script), the
    machine, the date, the wall time and the versions the docs print.
    """
    import keras

    record = json.loads((output / "results.json").read_text())
    run = record.pop("run")
    assert set(run) == {"command", "machine", "date", "wall_seconds", "versions"}
    backend = keras.backend.backend()
    assert run["command"].startswith(
        f"KERAS_BACKEND={backend} python examples/{script}.py "
    )
    assert f"--output {output}" in run["command"]
    assert run["machine"].startswith(f"{os.cpu_count()}-core ")
    assert run["date"].endswith(" UTC") and run["wall_seconds"] > 0
    assert run["versions"]["keras"] == keras.__version__
    assert list(run["versions"])[-1] == "kerasx"
    return record


def check_rows(rows: list[dict], variants: list[str]) -> dict[str, dict]:
    """The table has exactly `variants`, with accuracies in [0, 1] and sane counts."""
    assert [row["variant"] for row in rows] == variants
    for row in rows:
        assert 0.0 <= row["best_val_accuracy"] <= 1.0
        assert 1 <= row["best_epoch"] <= row["epochs"]
        assert row["seconds_per_epoch"] > 0
    return {row["variant"]: row for row in rows}


def assert_dropout_on_in_training_off_in_predict(model, x) -> None:
    """Two `training=True` calls differ (dropout active); two `predict`s agree."""
    import keras

    first = keras.ops.convert_to_numpy(model(x, training=True))
    second = keras.ops.convert_to_numpy(model(x, training=True))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(x, verbose=0)
    )
