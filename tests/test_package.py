import json
import subprocess
import sys

import pytest

import kerasx


def test_version_is_single_sourced():
    from kerasx._version import __version__

    assert kerasx.__version__ == __version__ == "0.1.0.dev0"


_IMPORT_PROBE = """
import json, sys, time
import keras
before = set(sys.modules)
start = time.perf_counter()
import kerasx
seconds = time.perf_counter() - start
print(json.dumps({"added": sorted(set(sys.modules) - before), "seconds": seconds}))
"""


@pytest.fixture(scope="module")
def fresh_imports() -> list[dict]:
    """Three fresh interpreters: the modules and time `import kerasx` adds after
    `import keras` (one interpreter serves both checks; imports cost seconds)."""
    return [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _IMPORT_PROBE],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(3)
    ]


def test_import_adds_no_backend_or_plotting_library(fresh_imports):
    added = {m.split(".")[0] for m in fresh_imports[0]["added"]}
    # Neither a backend nor matplotlib comes in through kerasx (`import keras`
    # may import matplotlib itself when it is installed): only kerasx and the
    # standard library are new.
    assert added - set(sys.stdlib_module_names) <= {"kerasx"}, added
    assert "kerasx.schedules" in fresh_imports[0]["added"]  # registered on import


def test_import_is_fast(fresh_imports):
    # Fastest of three fresh interpreters: `import kerasx` after `import keras`
    # (load from other processes only adds time, so the minimum is the cost).
    # Idle, 2-core CPU: 0.10-0.11 s with 30 modules. The bound catches a
    # backend or matplotlib import (seconds), not the second worker's load.
    times = sorted(probe["seconds"] for probe in fresh_imports)
    assert times[0] < 0.250, times


def test_submodules_are_attributes():
    assert kerasx.datasets.__name__ == "kerasx.datasets"
    assert "datasets" in dir(kerasx)


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kerasx.nope  # noqa: B018


def test_import_works_without_matplotlib():
    # Keras imports matplotlib opportunistically; kerasx must not need it.
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "import kerasx\n"
        "kerasx.datasets\n"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip().endswith("ok")
