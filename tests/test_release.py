"""Release engineering: version source, workflows in sync with .ci/run, dist checks."""

from __future__ import annotations

import importlib.metadata
import io
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import trove_classifiers
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli is in the `dev` extra.
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import check_dist  # noqa: E402

# The commands every CI flavour must run (normalised, see `_ci_run_commands`).
CORE_COMMANDS = (
    '-e ".[dev,tensorflow-cpu,jax,plot,docs]"',
    "ruff check .",
    "ruff format --check .",
    "python -m pytest -q -p no:cacheprovider",
    "mkdocs build --strict",
    "python -m build --outdir dist .",
    "twine check --strict dist/*",
    "python scripts/check_dist.py dist",
    "scripts/smoke_imports.py",
)


def _ci_run_commands() -> str:
    text = (ROOT / ".ci/run").read_text()
    # `"$BIN/ruff" check .` -> `ruff check .`; `"$BIN/python" -m pip` -> `python -m pip`
    text = re.sub(r'"\$(?:BIN|VENV|SMOKE_VENV)/(?:bin/)?(\w+)"', r"\1", text)
    return text


def _workflow(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github/workflows" / name).read_text())


def _run_lines(workflow: dict) -> str:
    return "\n".join(
        step.get("run", "")
        for job in workflow["jobs"].values()
        for step in job["steps"]
    )


def test_version_matches_installed_distribution():
    import kerasx

    assert kerasx.__version__ == importlib.metadata.version("kerasx")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "src/kerasx/_version.py"


def test_classifiers_are_valid_trove_classifiers():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    classifiers = pyproject["project"]["classifiers"]
    unknown = [c for c in classifiers if c not in trove_classifiers.classifiers]
    assert unknown == []
    assert "Typing :: Typed" in classifiers
    assert (ROOT / "src/kerasx/py.typed").is_file()
    python_versions = {
        c.rsplit(" ", 1)[-1] for c in classifiers if re.search(r":: 3\.\d+$", c)
    }
    assert python_versions == {"3.10", "3.11", "3.12", "3.13"}


@pytest.mark.parametrize("command", CORE_COMMANDS)
def test_ci_workflow_runs_what_ci_run_runs(command):
    assert command in _ci_run_commands(), f".ci/run lost {command!r}"
    assert command in _run_lines(_workflow("ci.yml")), f"ci.yml lacks {command!r}"


def test_ci_workflow_matrix():
    job = _workflow("ci.yml")["jobs"]["test"]
    matrix = job["strategy"]["matrix"]
    assert matrix["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert matrix["backend"] == ["tensorflow", "jax", "torch"]
    assert job["env"]["KERAS_BACKEND"] == "${{ matrix.backend }}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.10"


def test_release_workflow_uses_trusted_publishing():
    text = (ROOT / ".github/workflows/release.yml").read_text()
    workflow = yaml.safe_load(text)
    # PyYAML reads the bare key `on` as True.
    trigger = workflow.get("on", workflow.get(True))
    assert trigger == {"push": {"tags": ["v*"]}}
    publish = workflow["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"}
    assert any(
        step.get("uses", "").startswith("pypa/gh-action-pypi-publish")
        for step in publish["steps"]
    )
    assert not re.search(r"password|secrets\.|api[_-]?token", text, re.IGNORECASE)
    run = _run_lines(workflow)
    assert "twine check --strict dist/*" in run
    assert "python scripts/check_dist.py dist --release" in run


def _write_archives(tmp_path: Path, version: str, *, extra_wheel=(), drop_sdist=()):
    wheel_path = tmp_path / f"kerasx-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel_path, "w") as wheel:
        for name in ("kerasx/__init__.py", "kerasx/py.typed", *extra_wheel):
            wheel.writestr(name, "")
        wheel.writestr(f"kerasx-{version}.dist-info/METADATA", "Name: kerasx")
    sdist_files = {
        *check_dist.SDIST_REQUIRED,
        "tests/test_a.py",
        "docs/page.md",
        "examples/demo.py",
    } - set(drop_sdist)
    with tarfile.open(tmp_path / f"kerasx-{version}.tar.gz", "w:gz") as sdist:
        for name in sorted(sdist_files):
            info = tarfile.TarInfo(f"kerasx-{version}/{name}")
            info.size = 1
            sdist.addfile(info, io.BytesIO(b"x"))
    return wheel_path


def test_check_dist_accepts_clean_archives(tmp_path):
    version = check_dist.read_version(ROOT)
    _write_archives(tmp_path, version)
    assert check_dist.main([str(tmp_path)]) == 0


def test_check_dist_rejects_unexpected_and_missing_files(tmp_path, capsys):
    version = check_dist.read_version(ROOT)
    _write_archives(
        tmp_path,
        version,
        extra_wheel=("kerasx/__pycache__/x.cpython-311.pyc", "benchmarks/out.json"),
        drop_sdist=("CHANGELOG.md",),
    )
    assert check_dist.main([str(tmp_path)]) == 1
    errors = capsys.readouterr().err
    assert "generated file shipped: kerasx/__pycache__/x.cpython-311.pyc" in errors
    assert "unexpected file outside the package: benchmarks/out.json" in errors
    assert "sdist: missing CHANGELOG.md" in errors


def test_release_refuses_version_without_changelog_section():
    changelog = "## [Unreleased]\n\n## [0.1.0] - 2026-11-23\n- first\n"
    assert check_dist.changelog_has_release(changelog, "0.1.0")
    assert not check_dist.changelog_has_release(changelog, "0.2.0")
    assert not check_dist.changelog_has_release("## [0.1.0]\n", "0.1.0")  # undated


def test_release_refuses_dev_versions(tmp_path, capsys):
    version = check_dist.read_version(ROOT)
    _write_archives(tmp_path, version)
    expected = 1 if re.search(r"(dev|a|b|rc)\d*$", version) else 0
    assert check_dist.main([str(tmp_path), "--release"]) == expected
    if expected:
        assert "refusing to release pre-release" in capsys.readouterr().err


def test_changelog_has_unreleased_section():
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_images_only_allowed_in_docs():
    assert not check_dist.is_generated("docs/examples/img/curves.png")
    assert check_dist.is_generated("examples/outputs_curves.png")
    assert check_dist.is_generated("benchmarks/results/plot.png")
    assert check_dist.is_generated("kerasx/__pycache__/a.cpython-311.pyc")
    assert not check_dist.is_generated("src/kerasx/datasets.py")


@pytest.mark.parametrize(
    ("newest", "expected"),
    [(None, "unknown"), ("3.14.0", "admitted by the pin"), ("99.0", "NOT admitted")],
)
def test_newest_keras_report_is_informational(newest, expected, monkeypatch, capsys):
    import newest_keras
    from packaging.version import Version

    release = None if newest is None else Version(newest)
    monkeypatch.setattr(newest_keras, "newest_release", lambda timeout: release)
    assert newest_keras.main([]) == 0
    assert expected in capsys.readouterr().out
    # Both CI flavours run it without letting it fail the run.
    assert "scripts/newest_keras.py --timeout 4 || true" in _ci_run_commands()
    assert "scripts/newest_keras.py --timeout 4 || true" in _run_lines(
        _workflow("ci.yml")
    )
