"""Checks the built docs site: what a reader sees, not just that it built.

    mkdocs build --strict --site-dir SITE && python scripts/check_docs.py SITE

Fails (exit 1, one line per problem) when a page of the built site

- references an image that does not exist;
- shows raw LaTeX (`\\frac`, `\\(`, `$$`, ...) outside the math elements that
  KaTeX renders, or has math but does not load KaTeX;
- renders a "Call arguments" section as one run-on paragraph instead of a list;
- contains wording that belongs in a commit message or a work log, not in user
  documentation ("left undone", "in the time available", ...);
- shows a `>>>` example as quoted text (a docstring example outside a code
  fence, which Markdown reads as nested quotes), or a docstring line as a quote
  (wrapped so that it starts with `>=`, say);

or when a public name (every `__all__` entry of the modules listed on the API
overview, read statically from `src/` with griffe)

- has no API entry (a mkdocstrings heading) on any page;
- has an API heading without a `[source]` link (added by
  `docs/hooks/source_links.py`) to a file and line of this repository that
  define it;
- has a docstring without the keras.io sections: `Args:` (`Attributes:` for
  result objects; constants need neither), `Input shape:` and `Output shape:` for
  layers, `Returns:` for functions, `Raises:` for functions and classes, and an
  `Example:` with a `>>>` example;

or when a Markdown page under `docs/` has a python block that the docs-test
(`scripts/run_docs_snippets.py`, run by `tests/test_docs_snippets.py`) would
not run and that is not marked `<!-- fragment -->` (a ```py, ```pycon or
```python3 fence, say).
"""

from __future__ import annotations

import argparse
import ast
import logging
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
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# The class of the `[source]` links that docs/hooks/source_links.py adds.
SOURCE_LINK_CLASS = "doc-source-link"


class _Page(HTMLParser):
    """Collects the prose text, images, ids and scripts of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.scripts: list[str] = []
        self.ids: set[str] = set()
        self.math_elements = 0
        # Heading id -> the hrefs of the `[source]` links inside that heading.
        self.source_links: dict[str, list[str]] = {}
        self._headings: list[tuple[str, str]] = []  # open (tag, id) headings
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
        if tag in _HEADINGS and attributes.get("id"):
            self._headings.append((tag, attributes["id"]))
        if tag == "a" and SOURCE_LINK_CLASS in classes and self._headings:
            heading = self._headings[-1][1]
            self.source_links.setdefault(heading, []).append(attributes.get("href", ""))
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
        if self._headings and self._headings[-1][0] == tag:
            self._headings.pop()
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


_QUOTED_PROMPT = re.compile(
    r"<blockquote>\s*<blockquote>\s*<blockquote>\s*(?:<p>)?(.{0,60})", re.DOTALL
)


def quoted_prompts(html: str) -> list[str]:
    """`>>>` example lines that Markdown rendered as three nested quotes.

    A docstring example outside a code fence, and not in an indented
    `Examples:` section, is Markdown text, where `>>> x` is a quote of a quote
    of a quote.
    """
    return [
        " ".join(re.sub(r"<[^>]+>", " ", m.group(1)).split())
        for m in _QUOTED_PROMPT.finditer(html)
    ]


class _DocstringQuotes(HTMLParser):
    """The text of each quote inside rendered docstrings (`doc-contents`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.quotes: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, opens doc contents)
        self._doc_depth = 0
        self._quote_depth = 0
        self._text: list[str] | None = None  # the open outermost quote's text
        self._prompt = False  # that quote holds `>>>` lines (quotes of quotes)

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        classes = set((dict(attrs).get("class") or "").split())
        opens_doc = "doc-contents" in classes
        self._doc_depth += opens_doc
        self._stack.append((tag, opens_doc))
        if tag == "blockquote":
            self._quote_depth += 1
            if self._quote_depth == 1 and self._doc_depth:
                self._text, self._prompt = [], False
            elif self._text is not None and not "".join(self._text).strip():
                self._prompt = True

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] == tag:
                for closed, opened_doc in reversed(self._stack[index:]):
                    self._doc_depth -= opened_doc
                    if closed == "blockquote":
                        self._close_quote()
                del self._stack[index:]
                break

    def _close_quote(self):
        self._quote_depth -= 1
        if self._quote_depth == 0 and self._text is not None:
            if not self._prompt:
                self.quotes.append(" ".join("".join(self._text).split())[:60])
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def docstring_quotes(html: str) -> list[str]:
    """Quotes in the rendered docstrings: a line that starts with `>` or `>=`.

    A docstring wrapped so that a line begins with `>= 0` or `> 1` shows that
    line as a quote. Quotes of quotes (bare `>>>` example lines) are left to
    `quoted_prompts`.
    """
    parser = _DocstringQuotes()
    parser.feed(html)
    parser.close()
    return parser.quotes


def work_log_phrases(html: str) -> list[str]:
    text = prose_text(html)
    return [_context(text, m.start(), m.end()) for m in _WORK_LOG.finditer(text)]


def headings_of(public: str, ids: Iterable[str]) -> list[str]:
    """The heading ids that document `kerasx.module.Name`.

    Its own id, or one under its defining module (`kerasx.layers.mc_dropout.X`
    for `kerasx.layers.X`).
    """
    module, _, name = public.rpartition(".")
    return [
        i
        for i in ids
        if i == public or (i.startswith(module + ".") and i.endswith("." + name))
    ]


def undocumented_names(public_names: Iterable[str], ids: set[str]) -> list[str]:
    """Public `kerasx.module.Name`s with no API heading id on any page."""
    return [public for public in public_names if not headings_of(public, ids)]


def source_link_problems(
    public_names: Iterable[str],
    source_links: dict[str, list[str]],
    repo_root: Path,
    prefix: str,
) -> list[str]:
    """Public names whose API heading lacks a `[source]` link that holds.

    `source_links` maps each heading id to the hrefs of the source links in it.
    A link holds when it is `prefix` + `path#Lline`, `path` is a file of
    `repo_root`, and `line` starts the definition of the name (its first
    decorator, `def`, `class` or assignment).
    """
    problems = []
    for public in public_names:
        headings = headings_of(public, source_links.keys())
        hrefs = [href for heading in headings for href in source_links[heading]]
        if not hrefs:
            problems.append(f"{public}: API heading without a [source] link")
            continue
        for href in hrefs:
            problem = _source_link_problem(
                href, public.rpartition(".")[2], repo_root, prefix
            )
            if problem:
                problems.append(f"{public}: [source] link {href} {problem}")
    return problems


_DEFINITION = re.compile(r"(?:async\s+def|def|class)\s+(\w+)|(\w+)\s*(?::|=(?!=))")


def _source_link_problem(href: str, name: str, repo_root: Path, prefix: str) -> str:
    if not href.startswith(prefix):
        return f"does not start with {prefix}"
    path, _, anchor = href[len(prefix) :].partition("#")
    if not re.fullmatch(r"L[1-9]\d*", anchor):
        return "has no #L<line> anchor"
    file = repo_root / path
    if not file.is_file():
        return f"points to {path}, which is not a file of the repository"
    lines = file.read_text(encoding="utf-8").splitlines()
    line = int(anchor[1:])
    if line > len(lines):
        return f"points past the end of {path} ({len(lines)} lines)"
    if not lines[line - 1] or lines[line - 1][0].isspace():
        return f"points inside a block of {path}: {lines[line - 1]!r}"
    # From the linked line, past decorators, to the first top-level definition.
    for text in lines[line - 1 :]:
        if not text or text[0].isspace() or text.startswith(("@", ")")):
            continue
        match = _DEFINITION.match(text)
        defined = match and (match.group(1) or match.group(2))
        if defined == name:
            return ""
        return f"points to a line of {path} that does not define {name}: {text!r}"
    return f"points to the end of {path}, which does not define {name}"


def public_names(src_dir: Path) -> list[str]:
    """Every `kerasx.<module>.<name>` in the `__all__` of the public modules."""
    return [public for public, _ in public_objects(src_dir)]


def public_objects(
    src_dir: Path, package: str = "kerasx", modules: Iterable[str] = PUBLIC_MODULES
) -> list[tuple[str, object]]:
    """`(public name, griffe object)` for each `__all__` entry, read statically."""
    import griffe

    loaded = griffe.load(package, search_paths=[str(src_dir)])
    objects = []
    for module in modules:
        if module not in loaded.modules:
            # griffe drops a module it cannot parse (a syntax error, say).
            raise ValueError(f"{package}.{module} could not be read by griffe")
        for name in sorted(str(n) for n in (loaded[module].exports or ())):
            objects.append((f"{package}.{module}.{name}", loaded[module][name]))
    return objects


# Documented by their `Attributes:` (they take no arguments a user passes):
# dataclasses, named tuples, and these classes kerasx builds itself.
ATTRIBUTE_DOCUMENTED = frozenset(
    {
        "kerasx.lr_finder.LRFinderResult",
        "kerasx.transfer.FineTuneResult",
        "kerasx.uncertainty.MCResult",
    }
)
# The options of the mkdocstrings `google` parser in mkdocs.yml, so the check
# reads the sections the site renders.
DOCSTRING_OPTIONS = {
    "returns_multiple_items": False,
    "trim_doctest_flags": True,
    "warn_unknown_params": False,
    "warn_missing_types": False,
    "warnings": False,
}


def missing_sections(public: str, obj) -> list[str]:
    """The keras.io sections that the docstring of `obj` (a griffe object) lacks.

    - `Args:`, or `Attributes:` for dataclasses, named tuples and
      `ATTRIBUTE_DOCUMENTED` (functions without parameters and constants,
      such as `SKIP`, need neither);
    - layers (subclasses of `keras.layers.Layer`): `Input shape:` and
      `Output shape:`;
    - functions: `Returns:`, unless annotated `-> None`;
    - functions and classes: `Raises:`;
    - every name: an `Example:` (or `Examples:`) section holding a `>>>` example.

    A class's sections may sit in its `__init__` docstring too, which
    mkdocstrings merges into the class (`merge_init_into_class`).
    """
    from griffe import DocstringSectionKind as Kind

    target = obj.final_target if obj.is_alias else obj
    kind = target.kind.value
    if kind not in {"class", "function", "attribute"}:
        return [f"{public}: a {kind}, not a class, function or constant"]
    sections = []
    documented = [target]
    if kind == "class" and "__init__" in target.members:
        documented.append(target.members["__init__"])
    for documented_obj in documented:
        if documented_obj.docstring is not None:
            sections += documented_obj.docstring.parse("google", **DOCSTRING_OPTIONS)
    if not sections:
        return [f"{public}: no docstring"]
    kinds = {section.kind for section in sections}
    titles = {
        (section.title or "").strip().lower()
        for section in sections
        if section.kind is Kind.admonition
    }
    missing = []
    if kind == "attribute":
        pass  # a constant: its prose and its example say what it is
    elif _is_record(public, target):
        if Kind.attributes not in kinds:
            missing.append("Attributes")
    elif (kind == "class" or _has_parameters(target)) and Kind.parameters not in kinds:
        missing.append("Args")
    if kind == "class" and _is_layer(target):
        missing += [
            t for t in ("Input shape", "Output shape") if t.lower() not in titles
        ]
    if kind == "function" and _returns_something(target) and Kind.returns not in kinds:
        missing.append("Returns")
    if kind != "attribute" and Kind.raises not in kinds:
        missing.append("Raises")
    examples = _examples(sections)
    if not examples:
        missing.append("Example")
    problems = [f"{public}: docstring has no `{title}:` section" for title in missing]
    if examples and not any(">>>" in text for text, _ in examples):
        problems.append(f"{public}: its `Example:` section has no `>>>` example")
    if any(not parsed and _unfenced_prompt(text) for text, parsed in examples):
        problems.append(
            f"{public}: its `Example:` has `>>>` lines outside a code fence, which "
            "render as quoted text: indent them under `Examples:` or fence them"
        )
    return problems


_EXAMPLE_TITLE = re.compile(r"^Examples?:[ \t]*$", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


def _examples(sections) -> list[tuple[str, bool]]:
    """`(text, parsed)` of each example section of a parsed docstring.

    griffe parses an indented `Examples:` section into examples (`parsed`: its
    `>>>` blocks render as code). Its other forms stay Markdown, where only a
    fenced block is code: an indented `Example:` (an admonition), and Keras'
    own, a flush `Example:` line in the text followed by a fenced block.
    """
    from griffe import DocstringSectionKind as Kind

    found = []
    for section in sections:
        if section.kind is Kind.examples:
            parts = [text for kind, text in section.value if kind is Kind.examples]
            found.append(("\n".join(parts), True))
        elif section.kind is Kind.admonition and (
            (section.title or "").strip().lower() in {"example", "examples"}
        ):
            found.append((section.value.contents, False))
        elif section.kind is Kind.text:
            for match in _EXAMPLE_TITLE.finditer(section.value):
                found.append((section.value[match.end() :], False))
    return found


def _unfenced_prompt(markdown: str) -> bool:
    """Whether a `>>>` line of `markdown` lies outside a fenced code block."""
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.lstrip().startswith(">>>"):
            return True
    return False


def section_problems(objects: Iterable[tuple[str, object]]) -> list[str]:
    """`missing_sections` of each public object; a docstring that cannot be
    parsed is reported, not raised."""
    problems = []
    griffe_logger = logging.getLogger("griffe")
    level = griffe_logger.level
    griffe_logger.setLevel(logging.ERROR)
    try:
        for public, obj in objects:
            try:
                problems += missing_sections(public, obj)
            except Exception as error:  # report it, and check the other names
                problems.append(
                    f"{public}: could not read its docstring "
                    f"({type(error).__name__}: {error})"
                )
    finally:
        griffe_logger.setLevel(level)
    return problems


def _is_record(public: str, cls) -> bool:
    if public in ATTRIBUTE_DOCUMENTED or "dataclass" in cls.labels:
        return True
    bases = {_base_path(base) for base in getattr(cls, "bases", ())}
    return bool(bases & {"typing.NamedTuple", "collections.namedtuple", "NamedTuple"})


def _has_parameters(function) -> bool:
    return any(p.name not in {"self", "cls"} for p in function.parameters)


def _returns_something(function) -> bool:
    return function.returns is None or str(function.returns) != "None"


def _base_path(base) -> str:
    return getattr(base, "canonical_path", None) or str(base)


def _is_layer(cls, seen: frozenset = frozenset()) -> bool:
    """Whether `cls` subclasses `keras.layers.Layer`, read statically: a base is
    a Keras layer (`keras.layers.*`, `keras.Layer`) or a kerasx class that is."""
    import griffe

    for base in cls.bases:
        path = _base_path(base)
        if path == "keras.Layer" or path.startswith(
            ("keras.layers.", "keras.src.layers.")
        ):
            return True
        if path in seen:
            continue
        try:
            resolved = cls.modules_collection[path]
            resolved = resolved.final_target if resolved.is_alias else resolved
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue  # outside the loaded package
        if resolved.kind.value == "class" and _is_layer(resolved, seen | {path}):
            return True
    return False


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


_FIGURE = re.compile(
    r"(?<![\w.\-])(\d+(?:\.\d+)?)"
    r"(?:\s?(×(?!\s?[\dA-Z])|x(?!\w|\s[\dA-Z])|%|ms\b|µs\b|s\b))?(?!\d|\.\d)"
)
_ALLOWED = re.compile(r"<!--\s*results-(?:settings|unsourced):(.*?)-->", re.DOTALL)
_MD_LINK = re.compile(r"\]\(([^)\s#]+\.md)(?:#[^)]*)?\)")
_SCALE = {"%": 100.0, "ms": 1e3, "µs": 1e6}


def _results_hook():
    """`docs/hooks/results.py`, imported by path (it is no package)."""
    import importlib.util

    name = "kerasx_docs_results_hook"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "docs" / "hooks" / "results.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _prose_figures(markdown: str, split_code) -> list[tuple[str, str, str]]:
    """`(number, unit, paragraph)` of each figure written in prose or tables:
    a number with a decimal point, or one followed by `×`/`x`, `%`, `s`, `ms`
    (`28 × 28` or `20 × Dense(100)`, a shape, is not a ratio)."""
    prose = "".join(text for code, text in split_code(markdown) if not code)
    prose = re.sub(r"<!--.*?-->", "", prose, flags=re.DOTALL)
    prose = re.sub(r"(`+).+?\1", "", prose, flags=re.DOTALL)
    figures = []
    for paragraph in re.split(r"\n[ \t]*\n", prose):
        text = re.sub(r"\]\([^)]*\)", "]", paragraph)  # link targets hold no figures
        for match in _FIGURE.finditer(text):
            number, unit = match.group(1), (match.group(2) or "").replace("x", "×")
            if "." in number or unit:
                figures.append((number, unit, paragraph))
    return figures


def _numbers(data) -> Iterable[float]:
    if isinstance(data, dict):
        data = list(data.values())
    if isinstance(data, list):
        for value in data:
            yield from _numbers(value)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield float(data)


def _held(number: str, unit: str, rendered: set[str], values: list[float]) -> bool:
    """Whether a marker rendered `number`, or a value rounds to it."""
    if number in rendered:
        return True
    decimals = len(number.partition(".")[2])
    scale = _SCALE.get(unit, 1.0)
    return any(f"{value * scale:.{decimals}f}" == number for value in values)


def unsourced_figures(docs_dir: Path) -> list[str]:
    """Figures that pages state without a results file that holds them.

    A page takes its numbers from the results files its `<!-- result: -->` and
    `<!-- results-table: -->` markers name (`docs/hooks/results.py`): every
    ratio (`1.23×`, `4x`), percentage, decimal (`0.8755`) or timing
    (`4.3 s`, `12 ms`) written literally in its prose or tables (code blocks,
    inline code and `<!-- -->` comments are skipped) has to be a text that a
    marker of the page renders, or a value of one of its results files at the
    literal's rounding (times 100 for a percentage, 1 000 for milliseconds).
    Settings (a dropout rate, a threshold) and measured figures that no results
    file holds yet are listed on the page, comma-separated, in
    `<!-- results-settings: ... -->` and `<!-- results-unsourced: ... -->` (an
    optional note in parentheses may end the list).

    A page without markers states no measured figure except in a paragraph
    that links to the page holding it, or listed as above.

    Across pages: two markers of the same key and format render the same text
    on every page (they read the same file), so pages disagree only where one
    copies a figure of another. A paragraph of any page that links to a page
    with markers must not state a figure that is neither rendered on the linked
    page nor held by its results files (nor by the citing page's own files).
    """
    import json

    hook = _results_hook()
    problems: list[str] = []
    pages: dict[str, tuple[str, list[str], set[str], list[float]]] = {}
    for path in sorted(docs_dir.rglob("*.md")):
        rel = path.relative_to(docs_dir).as_posix()
        markdown = path.read_text(encoding="utf-8")
        files = hook.referenced_files(markdown, docs_dir)
        rendered: set[str] = set()
        values: list[float] = []
        if files:
            try:
                rendered = {r.text for r in hook.render(markdown, docs_dir)[1]}
                for file in files:
                    data = json.loads((docs_dir / file).read_text(encoding="utf-8"))
                    values += _numbers(data)
            except (ValueError, OSError) as error:
                problems.append(f"{rel}: results marker: {error}")
                continue
        pages[rel] = (markdown, files, rendered, values)
    for rel, (markdown, files, rendered, values) in pages.items():
        allowed = {
            re.sub(r"\s+", "", item).replace("x", "×")
            for items in _ALLOWED.findall(markdown)
            for item in re.sub(r"\(.*\)\s*$", "", items, flags=re.DOTALL).split(",")
            if item.strip()
        }
        for number, unit, paragraph in _prose_figures(markdown, hook.split_code):
            figure = number + ("" if unit in ("", "×", "%") else " ") + unit
            own = bool(files) and _held(number, unit, rendered, values)
            cited_pages = [
                cited
                for link in dict.fromkeys(_MD_LINK.findall(paragraph))
                if (
                    cited := posixpath.normpath(
                        posixpath.join(posixpath.dirname(rel), link)
                    )
                )
                != rel
                and pages.get(cited, ("", []))[1]
            ]
            for cited in cited_pages:
                _, _, cited_rendered, cited_values = pages[cited]
                if not (own or _held(number, unit, cited_rendered, cited_values)):
                    problems.append(
                        f"{rel}: '{figure}' in a paragraph citing {cited}: that "
                        "page neither renders it nor do its results files hold it"
                    )
            if not (own or cited_pages or number + unit in allowed):
                names = f"names ({', '.join(files)})" if files else "names none"
                problems.append(
                    f"{rel}: '{figure}' is in no results file the page {names}: "
                    "render it with a <!-- result: --> marker, or list it in "
                    "<!-- results-settings: --> or <!-- results-unsourced: -->"
                )
    return problems


def source_prefix(repo_root: Path) -> str:
    """`<repo_url>/blob/v<version>/`: where the `[source]` links point.

    `repo_url` from `mkdocs.yml`, the version from `src/kerasx/_version.py`
    (read, not imported: no backend is loaded).
    """
    config = (repo_root / "mkdocs.yml").read_text(encoding="utf-8")
    match = re.search(r"^repo_url:\s*[\"']?([^\s\"']+)", config, re.MULTILINE)
    if match is None:
        raise ValueError(f"{repo_root / 'mkdocs.yml'} has no repo_url")
    return f"{match.group(1).rstrip('/')}/blob/v{read_version(repo_root / 'src')}/"


def read_version(src_dir: Path) -> str:
    """`kerasx.__version__`, from `_version.py` without importing kerasx."""
    tree = ast.parse((src_dir / "kerasx" / "_version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise ValueError(f"{src_dir / 'kerasx' / '_version.py'} sets no __version__")


def check_site(
    site_dir: Path,
    names: Iterable[str],
    repo_root: Path | None = None,
    prefix: str | None = None,
) -> list[str]:
    """Problems of the built site; the `[source]` links are checked when
    `repo_root` and their `prefix` are given."""
    names = list(names)
    problems = []
    all_ids: set[str] = set()
    source_links: dict[str, list[str]] = {}
    pages = sorted(site_dir.rglob("*.html"))
    if not pages:
        return [f"{site_dir}: no HTML pages (build the site first)"]
    for path in pages:
        rel = path.relative_to(site_dir).as_posix()
        html = path.read_text(encoding="utf-8")
        page = parse(html)
        all_ids |= page.ids
        for heading, hrefs in page.source_links.items():
            source_links.setdefault(heading, []).extend(hrefs)
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
        for snippet in docstring_quotes(html):
            problems.append(
                f"{rel}: a docstring line starting with `>` renders as a quote "
                f"(rewrap it so that no line starts with `>`): {snippet}..."
            )
        for snippet in quoted_prompts(html):
            problems.append(
                f"{rel}: a `>>>` example rendered as quoted text (fence it, or "
                f"indent it under `Examples:`): >>> {snippet}..."
            )
    problems = list(dict.fromkeys(problems))  # a heading's text repeats in its toc
    undocumented = undocumented_names(names, all_ids)
    for name in undocumented:
        problems.append(f"{name}: public name without an API entry on any page")
    if repo_root is not None and prefix is not None:
        documented = [name for name in names if name not in undocumented]
        problems += source_link_problems(documented, source_links, repo_root, prefix)
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
    repo_root = args.src.resolve().parent
    try:
        objects = public_objects(args.src)
    except ValueError as error:
        print(f"check_docs: {error}")
        return 1
    names = [public for public, _ in objects]
    problems = (
        check_site(args.site_dir, names, repo_root, source_prefix(repo_root))
        + section_problems(objects)
        + unrun_python_blocks(args.docs)
        + unsourced_figures(args.docs)
    )
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
