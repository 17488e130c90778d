"""MkDocs hook: fills the API overview page from the package's `__all__` lists.

The table on `api.md` is generated at build time, so a name added to a module's
`__all__` appears there without editing the page. Names, kinds and one-line
summaries come from a static read of `src/` with griffe (no backend import);
each name links to the page whose `::: identifier` block documents it.
"""

from __future__ import annotations

import re
from pathlib import Path

import griffe

MARKER = "<!-- api-overview -->"
MODULES = (
    "schedules",
    "callbacks",
    "lr_finder",
    "layers",
    "uncertainty",
    "transforms",
    "transfer",
    "ops",
    "models",
    "saving",
    "datasets",
    "plotting",
)
_DIRECTIVE = re.compile(r"^:::\s+(kerasx(?:\.\w+)+)\s*$", re.MULTILINE)


def documented_identifiers(docs_dir: Path) -> dict[str, str]:
    """Maps each `::: identifier` in the docs to its page, relative to docs_dir."""
    found: dict[str, str] = {}
    for page in sorted(docs_dir.rglob("*.md")):
        for identifier in _DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            found.setdefault(identifier, page.relative_to(docs_dir).as_posix())
    return found


def _kind(obj) -> str:
    target = obj.final_target if obj.is_alias else obj
    return {"class": "class", "function": "function"}.get(target.kind.value, "constant")


def _summary(obj) -> str:
    docstring = obj.docstring
    if docstring is None or not docstring.value.strip():
        return ""
    first_paragraph = docstring.value.strip().split("\n\n")[0]
    return first_paragraph.replace("\n", " ").replace("|", "\\|")


def _link(module: str, name: str, identifiers: dict[str, str]) -> str | None:
    public = f"{module}.{name}"
    if public in identifiers:
        return f"{identifiers[public]}#{public}"
    # Documented under the defining module's path (e.g. kerasx.layers.mc_dropout.X).
    for identifier, page in identifiers.items():
        if identifier.startswith(module + ".") and identifier.endswith("." + name):
            return f"{page}#{identifier}"
    return None


def overview_markdown(src_dir: Path, docs_dir: Path) -> str:
    """The API overview: one table per public module."""
    package = griffe.load("kerasx", search_paths=[str(src_dir)])
    identifiers = documented_identifiers(docs_dir)
    parts = []
    for short in MODULES:
        module = package[short]
        path = f"kerasx.{short}"
        summary = _summary(module)
        parts.append(f"## `{path}`\n")
        if summary:
            parts.append(f"{summary}\n")
        parts.append("| name | kind | what it does |\n|---|---|---|")
        for name in sorted(module.exports or (), key=lambda n: str(n).lower()):
            name = str(name)
            obj = module[name]
            link = _link(path, name, identifiers)
            label = f"[`{name}`]({link})" if link else f"`{name}`"
            parts.append(f"| {label} | {_kind(obj)} | {_summary(obj)} |")
        parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown, page, config, files):
    if MARKER not in markdown:
        return markdown
    docs_dir = Path(config["docs_dir"])
    src_dir = Path(config["config_file_path"]).parent / "src"
    return markdown.replace(MARKER, overview_markdown(src_dir, docs_dir))
