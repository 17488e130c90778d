"""MkDocs hook: tables and figures of a page come from results files (JSON).

Benchmarks and example runs write their numbers to JSON files under `docs/`
(`docs/examples/results/<example>.json`, say). A page does not copy those
numbers; it names them with an HTML comment that this hook replaces by the
formatted value before the Markdown is rendered. Without the hook a marker
renders nothing.

A single figure:

    <!-- result: examples/results/run.json#calibration.predict.ece:.4f -->

`PATH#EXPR[:FORMAT]`: `PATH` is relative to `docs/` (leave it out, as in
`<!-- result: #calibration.predict.ece:.4f -->`, when the page's
`results-table` markers name exactly one file); `EXPR` is a dotted key path
(`conformal.0.coverage` indexes a list; `_` in a key also matches a space;
a key may be quoted, `extra."layer 1 / last"`; `key?` is `null` when missing)
or arithmetic on key paths and numbers (`+ - * /`, parentheses:
`(a.x - b.x) * 100`); `FORMAT` is a Python format
spec (`.4f`, `.3g`, `g`), `upper`, `join` (a list as `a, b`; `join.2f` formats each
item with `.2f`), or nothing for `str(value)`.

A table:

    <!-- results-table: examples/results/run.json#conformal
    | predictions | method | coverage | mean set size |
    | {predictor:name} | {method:upper} | {coverage:.4f} | {mean_size:.3f} |
    names: predict=predict, mc_dropout=MC dropout
    -->

`PATH#KEY` selects the rows (`KEY` may be empty: the whole file); several
joined by ` + ` (`a.json#results + b.json#results`) give one table with the
rows of each in turn, where `{@file.backend}` reads a key of the row's own
file rather than of the row. The first
line of the body is the header row, the next ones are template rows whose cells
hold text and `{EXPR[:FORMAT]}` placeholders, with key paths relative to `KEY`:

- with one template row and `KEY` a list or an object, the row repeats for each
  item (each value of the object, in the file's order), `@key` being the
  item's key (or list index);
- with several template rows, each renders once.

The `name` format looks a value up in the `names:` line (`key=label` pairs,
comma-separated; a value without a label prints as it is). A `null` value
renders as nothing, and arithmetic on it is `null` too; a cell whose
placeholders are all `null` is empty, or holds the text of a `null:` line
(`null: -`) of the marker. If the file has a `run` object (`command`,
`machine`, `date`, `versions`: an object of package versions), one line under
the first table of that file on the page says how the numbers were made.

Markers inside fenced code blocks are left as they are. `scripts/check_docs.py`
checks that every figure a page with markers writes literally is held by the
results files it names.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from pathlib import Path
from typing import NamedTuple

MARKER = re.compile(r"<!--\s*(results-table|result):(.*?)-->", re.DOTALL)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_SEGMENT = r'(?:\w+|"[^"]*")'
_PATH = re.compile(
    rf"(?<![\w.\"])(?:@key|@file(?:\.{_SEGMENT})+|(?:[A-Za-z_]\w*|\"[^\"]*\")"
    rf"(?:\.{_SEGMENT})*)\??"
)
_JOIN = re.compile(r" \+ (?=[\w./-]+\.json#)")
_PART = re.compile(r'"([^"]*)"|([^."]+)')
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class ResultsError(ValueError):
    """A marker that names a missing file, key or format."""


class Rendered(NamedTuple):
    """One value a marker rendered: the file, the expression, format and text."""

    file: str
    expr: str
    fmt: str
    text: str


def split_code(markdown: str) -> list[tuple[bool, str]]:
    """`(is_fenced_code, text)` pieces of `markdown`, in order."""
    pieces: list[tuple[bool, str]] = []
    fence = None
    buffer: list[str] = []
    for line in markdown.splitlines(keepends=True):
        match = _FENCE.match(line)
        if fence is None and match:
            pieces.append((False, "".join(buffer)))
            buffer, fence = [line], match.group(1)
        elif fence is not None and match and match.group(1).startswith(fence):
            buffer.append(line)
            pieces.append((True, "".join(buffer)))
            buffer, fence = [], None
        else:
            buffer.append(line)
    pieces.append((fence is not None, "".join(buffer)))
    return [(code, text) for code, text in pieces if text]


def lookup(data, path: str):
    """The value at the dotted `path` of `data` (`a.0.b` indexes a list).

    A key written with `_` also finds a key with spaces: `extra.test_accuracy`
    reads `{"extra": {"test accuracy": ...}}`; any key may be quoted
    (`extra."last hidden: std"`). A trailing `?` makes a missing key `None`.
    """
    optional = path.endswith("?")
    value = data
    for quoted, plain in _PART.findall(path.rstrip("?")):
        part = quoted or plain
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, dict) and part.replace("_", " ") in value:
            value = value[part.replace("_", " ")]
        elif optional:
            return None
        else:
            raise ResultsError(f"no key {path!r}")
    return value


def evaluate(expr: str, data, key=None, file=None):
    """The value of `expr`: a key path of `data`, or arithmetic on key paths.

    `@key` is the row's key, `@file.PATH` a key path of the whole file
    (`file`) the row comes from.
    """
    expr = expr.strip()
    names: dict[str, object] = {}

    def name_of(match: re.Match) -> str:
        token = match.group(0)
        if token == "@key":
            value = key
        elif token.startswith("@file."):
            value = lookup(data if file is None else file, token[len("@file.") :])
        else:
            value = lookup(data, token)
        names[f"_v{len(names)}"] = value
        return f"_v{len(names) - 1}"

    source = _PATH.sub(name_of, expr)
    if source == "_v0" or any(value is None for value in names.values()):
        return names["_v0"] if source == "_v0" else None
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        raise ResultsError(f"cannot read the expression {expr!r}") from None
    return _arithmetic(tree.body, names, expr)


def _arithmetic(node, names, expr):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        value = names[node.id]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise ResultsError(f"{expr!r}: arithmetic on a value that is not a number")
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _arithmetic(node.left, names, expr)
        return _OPERATORS[type(node.op)](left, _arithmetic(node.right, names, expr))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arithmetic(node.operand, names, expr)
    raise ResultsError(f"{expr!r}: only key paths, numbers and + - * / are allowed")


def format_value(value, fmt: str, names: dict[str, str] | None = None) -> str:
    """`value` as a page shows it: `fmt` is a format spec, `upper`, `name` or `join`."""
    if value is None:
        return ""
    if fmt.startswith("join"):
        if not isinstance(value, list):
            raise ResultsError(f"cannot join {value!r}: not a list")
        return ", ".join(format_value(item, fmt[4:], names) for item in value)
    if fmt == "upper":
        return str(value).upper()
    if fmt == "name":
        return (names or {}).get(str(value), str(value))
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        raise ResultsError(f"cannot format {value!r} with {fmt!r}") from None


def _split_format(spec: str) -> tuple[str, str]:
    """`(expr, format)` of `EXPR[:FORMAT]`; a `:` inside a quoted key is no split."""
    unquoted = re.sub(r'"[^"]*"', lambda m: "_" * len(m.group(0)), spec)
    colon = unquoted.rfind(":")
    if colon < 0:
        return spec.strip(), ""
    return spec[:colon].strip(), spec[colon + 1 :].strip()


class _Page:
    def __init__(self, markdown: str, docs_dir: Path):
        self.docs_dir = docs_dir
        self.cache: dict[str, object] = {}
        self.rendered: list[Rendered] = []
        self.described: set[str] = set()
        tables = {
            source
            for code, text in split_code(markdown)
            if not code
            for kind, body in MARKER.findall(text)
            if kind == "results-table"
            for source, _ in _sources(body)
        }
        self.default = tables.pop() if len(tables) == 1 else None

    def load(self, path: str):
        path = path.strip() or self.default
        if path is None:
            raise ResultsError(
                "a marker without a file needs exactly one results-table file "
                "on the page"
            )
        if path not in self.cache:
            file = self.docs_dir / path
            if not file.is_file():
                raise ResultsError(f"no results file {path} under docs/")
            self.cache[path] = json.loads(file.read_text(encoding="utf-8"))
        return path, self.cache[path]

    def figure(self, body: str) -> str:
        path, _, spec = body.strip().partition("#")
        path, data = self.load(path)
        expr, fmt = _split_format(spec)
        text = format_value(evaluate(expr, data), fmt)
        self.rendered.append(Rendered(path, expr, fmt, text))
        return text

    def table(self, body: str) -> str:
        head, *lines = [line.strip() for line in body.strip().splitlines()]
        names: dict[str, str] = {}
        rows = []
        self.null = ""
        for line in lines:
            if line.startswith("null:"):
                self.null = line[len("null:") :].strip()
            elif line.startswith("names:"):
                for pair in line[len("names:") :].split(","):
                    name, _, label = pair.partition("=")
                    names[name.strip()] = label.strip()
            elif line:
                rows.append(line)
        if len(rows) < 2:
            raise ResultsError(f"{head}: a header row and a template row are needed")
        header, templates = rows[0], rows[1:]
        body_rows, runs = [], []
        # `A.json#rows + B.json#rows`: the rows of each file, in that order.
        for path, key in _sources(head):
            path, data = self.load(path)
            items = lookup(data, key)
            if len(templates) == 1 and isinstance(items, (list, dict)):
                pairs = items.items() if isinstance(items, dict) else enumerate(items)
                body_rows += [
                    self._row(templates[0], path, item, k, names, data)
                    for k, item in pairs
                ]
            else:
                body_rows += [
                    self._row(t, path, items, None, names, data) for t in templates
                ]
            run = data.get("run") if isinstance(data, dict) else None
            if isinstance(run, dict) and path not in self.described:
                self.described.add(path)
                runs.append(describe_run(run))
        columns = header.strip("|").count("|") + 1
        lines = [header, "|" + "---|" * columns, *body_rows]
        if runs:
            lines += ["", *runs]
        return "\n".join(lines)

    def _row(self, template: str, path: str, item, key, names, file=None) -> str:
        def fill_cell(cell: str) -> str:
            values = []

            def fill(match: re.Match) -> str:
                expr, fmt = _split_format(match.group(1))
                value = evaluate(expr, item, key, file)
                values.append(value)
                text = format_value(value, fmt, names)
                self.rendered.append(Rendered(path, expr, fmt, text))
                return text

            text = _PLACEHOLDER.sub(fill, cell)
            if values and all(value is None for value in values):
                return f" {self.null} "
            return text

        return "|".join(fill_cell(cell) for cell in template.split("|"))


def describe_run(run: dict) -> str:
    """The line under a table: command, machine, date, wall time and versions."""
    parts = []
    if run.get("command"):
        parts.append(f"`{run['command']}`")
    if run.get("machine"):
        parts.append(f"on {run['machine']}")
    if run.get("date"):
        parts.append(str(run["date"]))
    if run.get("wall_seconds"):
        minutes, seconds = divmod(round(run["wall_seconds"]), 60)
        parts.append(f"{minutes} min {seconds} s" if minutes else f"{seconds} s")
    versions = run.get("versions") or {}
    if versions:
        parts.append(", ".join(f"{name} {v}" for name, v in versions.items()))
    return "*Run: " + "; ".join(parts) + ".*" if parts else ""


def render(markdown: str, docs_dir: Path) -> tuple[str, list[Rendered]]:
    """`markdown` with its markers replaced, and the values they rendered."""
    page = _Page(markdown, Path(docs_dir))

    def replace(match: re.Match) -> str:
        kind, body = match.groups()
        return page.table(body) if kind == "results-table" else page.figure(body)

    out = [
        text if code else MARKER.sub(replace, text)
        for code, text in split_code(markdown)
    ]
    return "".join(out), page.rendered


def referenced_files(markdown: str, docs_dir: Path) -> list[str]:
    """The results files (relative to `docs_dir`) that the markers name."""
    page = _Page(markdown, Path(docs_dir))
    files = []
    for code, text in split_code(markdown):
        for _kind, body in [] if code else MARKER.findall(text):
            files += [path or page.default for path, _ in _sources(body)]
    return list(dict.fromkeys(f for f in files if f))


def _sources(body: str) -> list[tuple[str, str]]:
    """`(path, key)` of each file a marker names (a table joins them with ` + `)."""
    head = body.strip().split("\n", 1)[0]
    # ` + ` joins files only before another `PATH.json#`: an expression's `+`
    # or a quoted key holding ` + ` stays whole.
    pairs = (source.partition("#") for source in _JOIN.split(head))
    return [(path.strip(), key.strip()) for path, _, key in pairs]


def on_page_markdown(markdown, page, config, files):
    if "<!--" not in markdown:
        return markdown
    try:
        return render(markdown, Path(config["docs_dir"]))[0]
    except (ResultsError, json.JSONDecodeError) as error:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_path}: results marker: {error}") from None
