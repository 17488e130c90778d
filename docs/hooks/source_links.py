"""MkDocs hook: a `[source]` link on each API heading, as keras.io has.

Each heading mkdocstrings renders for a module-level object (a class, function
or constant, its id the object's path, e.g. `kerasx.callbacks.OneCycleScheduler`)
gets a link to the line that defines it in the repository, at the tag of the
documented version:

    <repo_url>/blob/v<version>/src/kerasx/callbacks/one_cycle.py#L74

Files and lines come from a static read of `src/` with griffe (no import, so no
backend is loaded); the version is `kerasx.__version__`, read from
`src/kerasx/_version.py`. Members (methods, properties) keep a plain heading.
`scripts/check_docs.py` checks that every public name's heading has a link that
points to its definition.
"""

from __future__ import annotations

import ast
import html as html_lib
import re
from collections.abc import Callable
from pathlib import Path

import griffe

LINK_CLASS = "doc-source-link"
_HEADING = re.compile(
    r'(<h([1-6]) id="(kerasx(?:\.\w+)+)" class="doc doc-heading">)(.*?)(</h\2>)',
    re.DOTALL,
)


def add_source_links(html: str, locate: Callable[[str], str | None]) -> str:
    """Adds a `[source]` link to each API heading whose id `locate` resolves.

    `locate(identifier)` returns the URL of the source, or None for a heading
    that gets no link.
    """

    def link(match: re.Match) -> str:
        opening, _, identifier, content, closing = match.groups()
        url = locate(identifier)
        if url is None or LINK_CLASS in content:
            return match.group(0)
        # Out of the search index: result titles stay the object's name.
        anchor = (
            f'<a class="{LINK_CLASS}" href="{html_lib.escape(url)}" '
            'title="Source code on GitHub" data-search-exclude>[source]</a>'
        )
        return f"{opening}{content}{anchor}{closing}"

    return _HEADING.sub(link, html)


class SourceLocator:
    """Maps an object's dotted path to the URL of the line that defines it."""

    def __init__(self, repo_root: Path, repo_url: str, package: str = "kerasx"):
        self.repo_root = repo_root.resolve()
        self.package = package
        src = self.repo_root / "src"
        version = read_version(src / package / "_version.py")
        self.base = f"{repo_url.rstrip('/')}/blob/v{version}/"
        self._loaded = griffe.load(package, search_paths=[str(src)])

    def location(self, identifier: str) -> tuple[str, int] | None:
        """`(path relative to the repository, first line)` of a module-level
        object, or None for members, modules and unknown names."""
        prefix = self.package + "."
        if not identifier.startswith(prefix):
            return None
        try:
            obj = self._loaded[identifier[len(prefix) :]]
            target = obj.final_target if obj.is_alias else obj
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
        if target.is_module or target.parent is None or not target.parent.is_module:
            return None
        if target.filepath is None or target.lineno is None:
            return None
        path = Path(target.filepath).resolve()
        if not path.is_relative_to(self.repo_root):
            return None
        return path.relative_to(self.repo_root).as_posix(), target.lineno

    def __call__(self, identifier: str) -> str | None:
        location = self.location(identifier)
        if location is None:
            return None
        path, line = location
        return f"{self.base}{path}#L{line}"


def read_version(version_file: Path) -> str:
    """`__version__` from `_version.py`, read without importing the package."""
    tree = ast.parse(version_file.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__"
            for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise ValueError(f"{version_file} sets no __version__")


_locator: SourceLocator | None = None


def on_pre_build(config):
    # Read the sources once per build (again on each rebuild of `mkdocs serve`).
    global _locator
    if not config.get("repo_url"):
        _locator = None  # nowhere to link to
        return
    repo_root = Path(config["config_file_path"]).parent
    _locator = SourceLocator(repo_root, config["repo_url"])


def on_page_content(html, page, config, files):
    if _locator is None or 'class="doc doc-heading"' not in html:
        return html
    return add_source_links(html, _locator)
