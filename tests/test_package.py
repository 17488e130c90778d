import json
import subprocess
import sys

import pytest

import kerasx


def test_version_is_single_sourced():
    from kerasx._version import __version__

    assert kerasx.__version__ == __version__ == "0.1.0.dev0"


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_adds_no_backend_or_plotting_library():
    keras_only = _modules_after("import keras")
    with_kerasx = _modules_after("import keras, kerasx")
    added = {m.split(".")[0] for m in with_kerasx - keras_only}
    # Neither a backend nor matplotlib comes in through kerasx (`import keras`
    # may import matplotlib itself when it is installed): only kerasx and the
    # standard library are new.
    assert added - set(sys.stdlib_module_names) <= {"kerasx"}, added
    assert "kerasx.schedules" in with_kerasx  # registered on import


def test_import_is_fast():
    # Median of three fresh interpreters: `import kerasx` after `import keras`.
    code = (
        "import time, keras\n"
        "start = time.perf_counter()\n"
        "import kerasx\n"
        "print(time.perf_counter() - start)"
    )
    times = sorted(
        float(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            ).stdout.split()[-1]
        )
        for _ in range(3)
    )
    assert times[1] < 0.150, times


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
