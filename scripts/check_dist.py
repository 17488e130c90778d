"""Checks the built sdist and wheel hold exactly what they should.

Usage: python scripts/check_dist.py DIST_DIR [--release]

The wheel may contain only the `kerasx` package (Python sources and `py.typed`)
and its `.dist-info`; the sdist must contain the sources, tests, docs, examples,
CHANGELOG.md, LICENSE and README.md, and nothing generated (caches, benchmark
outputs, build products, large data files). With `--release`, the version must
also be a final release with a dated CHANGELOG section.
"""

from __future__ import annotations

import argparse
import re
import sys
import tarfile
import zipfile
from pathlib import Path

MAX_FILE_BYTES = 1_000_000
SDIST_REQUIRED = (
    "PKG-INFO",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "mkdocs.yml",
    "src/kerasx/__init__.py",
    "src/kerasx/_version.py",
    "src/kerasx/py.typed",
    "tests/conftest.py",
    "docs/index.md",
)
SDIST_REQUIRED_DIRS = {
    "src/kerasx/": ".py",
    "tests/": ".py",
    "docs/": ".md",
    "examples/": ".py",
}
FORBIDDEN = re.compile(
    r"(__pycache__|\.pyc$|\.pytest_cache|\.ruff_cache|(^|/)\.venv|(^|/)site/"
    r"|(^|/)dist/|(^|/)outputs/|benchmarks/results|\.egg-info|\.ipynb_checkpoints"
    r"|\.(npz|npy|gz|h5|keras)$)"
)
# Images belong to the docs site only (its example plots); anywhere else they
# are example or benchmark outputs.
IMAGE = re.compile(r"\.(png|jpg|jpeg|svg)$")


def is_generated(name: str) -> bool:
    return bool(FORBIDDEN.search(name)) or (
        bool(IMAGE.search(name)) and not name.startswith("docs/")
    )


def read_version(root: Path) -> str:
    text = (root / "src/kerasx/_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit("cannot find __version__ in src/kerasx/_version.py")
    return match.group(1)


def changelog_has_release(changelog: str, version: str) -> bool:
    pattern = rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}\s*$"
    return re.search(pattern, changelog, flags=re.MULTILINE) is not None


def check_wheel(path: Path, version: str) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        infos = wheel.infolist()
    names = [info.filename for info in infos]
    dist_info = f"kerasx-{version}.dist-info/"
    for info in infos:
        name = info.filename
        if name.startswith(dist_info):
            continue
        if not name.startswith("kerasx/"):
            problems.append(f"wheel: unexpected file outside the package: {name}")
        elif not (name.endswith(".py") or name == "kerasx/py.typed"):
            problems.append(f"wheel: unexpected non-source file: {name}")
        if is_generated(name):
            problems.append(f"wheel: generated file shipped: {name}")
        if info.file_size > MAX_FILE_BYTES:
            problems.append(f"wheel: large file ({info.file_size} B): {name}")
    for required in ("kerasx/__init__.py", "kerasx/py.typed", f"{dist_info}METADATA"):
        if required not in names:
            problems.append(f"wheel: missing {required}")
    return problems


def check_sdist(path: Path, version: str) -> list[str]:
    problems = []
    prefix = f"kerasx-{version}/"
    with tarfile.open(path) as sdist:
        members = [m for m in sdist.getmembers() if m.isfile()]
    names = []
    for member in members:
        if not member.name.startswith(prefix):
            problems.append(f"sdist: file outside {prefix}: {member.name}")
            continue
        name = member.name[len(prefix) :]
        names.append(name)
        if is_generated(name):
            problems.append(f"sdist: generated or data file shipped: {name}")
        if member.size > MAX_FILE_BYTES:
            problems.append(f"sdist: large file ({member.size} B): {name}")
    for required in SDIST_REQUIRED:
        if required not in names:
            problems.append(f"sdist: missing {required}")
    for directory, suffix in SDIST_REQUIRED_DIRS.items():
        if not any(n.startswith(directory) and n.endswith(suffix) for n in names):
            problems.append(f"sdist: no {suffix} files under {directory}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("--release", action="store_true")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    version = read_version(root)
    wheels = sorted(args.dist.glob(f"kerasx-{version}-*.whl"))
    sdists = sorted(args.dist.glob(f"kerasx-{version}.tar.gz"))
    problems = []
    if len(wheels) != 1 or len(sdists) != 1:
        problems.append(
            f"expected one wheel and one sdist for version {version} in {args.dist}, "
            f"found {[p.name for p in args.dist.iterdir()]}"
        )
    else:
        problems += check_wheel(wheels[0], version)
        problems += check_sdist(sdists[0], version)
    changelog = (root / "CHANGELOG.md").read_text()
    if "## [Unreleased]" not in changelog:
        problems.append("CHANGELOG.md has no '## [Unreleased]' section")
    if args.release:
        if re.search(r"(dev|a|b|rc)\d*$", version):
            problems.append(f"refusing to release pre-release version {version}")
        if not changelog_has_release(changelog, version):
            problems.append(
                f"refusing to release {version}: CHANGELOG.md has no "
                f"'## [{version}] - YYYY-MM-DD' section"
            )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"dist ok: kerasx {version} ({len(wheels) + len(sdists)} archives)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
