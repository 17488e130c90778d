"""Checks the built docs site: what a reader sees, not just that it built.

    mkdocs build --strict --site-dir SITE && python scripts/check_docs.py SITE

Fails (exit 1, one line per problem) when a page of the built site

- references an image that does not exist;
- shows raw LaTeX (`\\frac`, `\\(`, `$$`, ...) outside the math elements that
  KaTeX renders, or has math but does not load KaTeX;
- renders a "Call arguments" section as one run-on paragraph instead of a list;
- contains wording that belongs in a commit message or a work log, not in user
  documentation ("left undone", "in the time available", ...);

or when a public name (every `__all__` entry of the modules listed on the API
overview, read statically from `src/` with griffe) has no API entry (a
mkdocstrings heading) on any page, or when a Markdown page under `docs/` has a
python block that the docs-test (`scripts/run_docs_snippets.py`, run by
`tests/test_docs_snippets.py`) would not run and that is not marked
`<!-- fragment -->` (a ```py, ```pycon or ```python3 fence, say).
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

PUBLIC_MODULES = (
    "callbacks",
    "datasets",
    "layers",
    "lr_finder",
    "models",
    "ops",
    "plotting",
    "saving",
    "schedules",
    "transfer",
    "transforms",
    "uncertainty",
)

# Phrases about how the work was done rather than what the software does.
WORK_LOG_PATTERNS = (
    r"\bthe issue\b(?!s\b| tracker)",
    r"\bthe issue's\b",
    r"\bleft undone\b",
    r"\bsee the anchors\b",
    r"\bthe anchors\b",
    r"\bagents?\b",
    r"\bin the time available\b",
    r"\bkept for honesty\b",
    r"\bthis session\b",
    r"\bin this session\b",
    r"\bno gpu was available\b",
    r"\bwe did not (?:find|get to|have time)\b",
    r"\bTODO\b",
    r"\bFIXME\b",
)
_WORK_LOG = re.compile("|".join(f"(?:{p})" for p in WORK_LOG_PATTERNS), re.IGNORECASE)

# TeX that KaTeX would have turned into math: a delimiter or a command.
_RAW_LATEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]"
    r"|\\(?:frac|sqrt|sum|prod|int|mathrm|mathbf|mathcal|operatorname|text|left"
    r"|right|cdot|times|alpha|beta|gamma|sigma|mu|epsilon|lambda|qquad|quad"
    r"|begin|end)\b"
)
_ARGUMENT_LINE = re.compile(r"(?:^|\n)\s*`?\**[A-Za-z_]\w*\**`?\s*(?:\([^)]*\))?\s*:\s")

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
# Subtrees whose text is not prose: code, scripts, and math KaTeX renders.
_SKIPPED_TAGS = {"code", "pre", "script", "style", "kbd", "samp"}
_MATH_CLASSES = {"arithmatex", "katex", "katex-display", "math"}


class _Page(HTMLParser):
    """Collects the prose text, images, ids and scripts of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.scripts: list[str] = []
        self.ids: set[str] = set()
        self.math_elements = 0
        self.text_parts: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, starts a skipped subtree)
        self._skip_depth = 0
        self._article_depth = 0
        self._has_article = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"])
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"])
        if tag in _VOID:
            return
        classes = set((attributes.get("class") or "").split())
        is_math = bool(classes & _MATH_CLASSES)
        if "arithmatex" in classes:
            self.math_elements += 1
        skipped = tag in _SKIPPED_TAGS or is_math
        if tag == "article":
            self._article_depth += 1
        self._stack.append((tag, skipped))
        if skipped:
            self._skip_depth += 1
        if tag in {"p", "li", "td", "th", "summary", "div", "h1", "h2", "h3", "h4"}:
            self.text_parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        # Close up to the matching tag (tolerates unclosed <p>, <li>, ...).
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] == tag:
                for closed, skipped in self._stack[index:]:
                    if skipped:
                        self._skip_depth -= 1
                    if closed == "article":
                        self._article_depth -= 1
                del self._stack[index:]
                break

    def handle_data(self, data):
        if self._skip_depth == 0 and (self._article_depth > 0 or not self._has_article):
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


def parse(html: str) -> _Page:
    page = _Page()
    # Material pages keep the content in <article>; elsewhere all text counts.
    page._has_article = "<article" in html
    page.feed(html)
    page.close()
    return page


def prose_text(html: str) -> str:
    """The text a reader sees on the page, without code, scripts and math."""
    return parse(html).text


def missing_images(html: str, page_path: str, exists) -> list[str]:
    """Local images the page references that `exists(site_relative_path)` denies.

    `page_path` is the page's path relative to the site root
    (`transforms/index.html`); remote and `data:` images are not checked.
    """
    missing = []
    for src in parse(html).images:
        parts = urlsplit(src)
        if parts.scheme or parts.netloc or src.startswith("data:"):
            continue
        path = unquote(parts.path)
        if path.startswith("/"):
            target = posixpath.normpath(path.lstrip("/"))
        else:
            target = posixpath.normpath(
                posixpath.join(posixpath.dirname(page_path), path)
            )
        if not exists(target):
            missing.append(src)
    return missing


def raw_latex(html: str) -> list[str]:
    """Snippets of TeX shown as text, outside the elements KaTeX renders."""
    text = prose_text(html)
    return [_context(text, m.start(), m.end()) for m in _RAW_LATEX.finditer(text)]


def math_without_renderer(html: str) -> bool:
    """True when the page has math elements but loads no KaTeX or MathJax."""
    page = parse(html)
    if page.math_elements == 0:
        return False
    return not any(re.search(r"katex|mathjax", src, re.I) for src in page.scripts)


def run_together_call_arguments(html: str) -> list[str]:
    """ "Call arguments" sections rendered as one paragraph of `name: ...` lines."""
    found = []
    pattern = re.compile(
        r"Call arguments:?\s*(?:</\w+>\s*)*(?:<p>)?"
        r"(.*?)(?:</p>|<ul>|<table|</details>)",
        re.DOTALL,
    )
    for match in pattern.finditer(html):
        body = match.group(1)
        if "<li" in body:
            continue
        text = re.sub(r"<[^>]+>", "", body)
        if len(_ARGUMENT_LINE.findall("\n" + text)) >= 2:
            found.append(_context(text, 0, min(len(text), 80)))
    return found


def work_log_phrases(html: str) -> list[str]:
    text = prose_text(html)
    return [_context(text, m.start(), m.end()) for m in _WORK_LOG.finditer(text)]


def undocumented_names(public_names: Iterable[str], ids: set[str]) -> list[str]:
    """Public `kerasx.module.Name`s with no API heading id on any page.

    A name documented under its defining module (`kerasx.layers.mc_dropout.X`
    for `kerasx.layers.X`) counts too.
    """
    missing = []
    for public in public_names:
        module, _, name = public.rpartition(".")
        if public in ids:
            continue
        if any(i.startswith(module + ".") and i.endswith("." + name) for i in ids):
            continue
        missing.append(public)
    return missing


def public_names(src_dir: Path) -> list[str]:
    """Every `kerasx.<module>.<name>` in the `__all__` of the public modules."""
    import griffe

    package = griffe.load("kerasx", search_paths=[str(src_dir)])
    return [
        f"kerasx.{module}.{name}"
        for module in PUBLIC_MODULES
        for name in sorted(str(n) for n in (package[module].exports or ()))
    ]


def _context(text: str, start: int, end: int, width: int = 40) -> str:
    snippet = text[max(0, start - width) : end + width]
    return " ".join(snippet.split())


def unrun_python_blocks(docs_dir: Path) -> list[str]:
    """Python blocks of `docs_dir/**/*.md` that are neither run nor fragments."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run_docs_snippets import unmarked_python_blocks

    problems = []
    for path in sorted(docs_dir.rglob("*.md")):
        rel = path.relative_to(docs_dir).as_posix()
        for block in unmarked_python_blocks(path.read_text(encoding="utf-8")):
            problems.append(
                f"{rel}:{block.line}: python block ```{block.info} is not run by "
                "the docs-test: use a ```python fence, or put <!-- fragment --> "
                "on the line before it"
            )
    return problems


def check_site(site_dir: Path, names: Iterable[str]) -> list[str]:
    problems = []
    all_ids: set[str] = set()
    pages = sorted(site_dir.rglob("*.html"))
    if not pages:
        return [f"{site_dir}: no HTML pages (build the site first)"]
    for path in pages:
        rel = path.relative_to(site_dir).as_posix()
        html = path.read_text(encoding="utf-8")
        all_ids |= parse(html).ids
        for src in missing_images(html, rel, lambda p: (site_dir / p).is_file()):
            problems.append(f"{rel}: missing image {src}")
        for snippet in raw_latex(html):
            problems.append(f"{rel}: raw LaTeX in the text: ...{snippet}...")
        if math_without_renderer(html):
            problems.append(f"{rel}: has math but loads neither KaTeX nor MathJax")
        for snippet in run_together_call_arguments(html):
            problems.append(f"{rel}: 'Call arguments' run together: {snippet}...")
        for snippet in work_log_phrases(html):
            problems.append(f"{rel}: work-log wording: ...{snippet}...")
    problems = list(dict.fromkeys(problems))  # a heading's text repeats in its toc
    for name in undocumented_names(names, all_ids):
        problems.append(f"{name}: public name without an API entry on any page")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site_dir", type=Path, help="the directory mkdocs built")
    parser.add_argument(
        "--src",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "src",
        help="where the kerasx sources are (default: ./src)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs",
        help="the Markdown sources, for the python-block check (default: ./docs)",
    )
    args = parser.parse_args(argv)
    names = public_names(args.src)
    problems = check_site(args.site_dir, names) + unrun_python_blocks(args.docs)
    for problem in problems:
        print(problem)
    pages = len(list(args.site_dir.rglob("*.html")))
    if problems:
        print(f"check_docs: {len(problems)} problem(s) in {pages} pages")
        return 1
    print(f"check_docs: {pages} pages and {len(names)} public names OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
