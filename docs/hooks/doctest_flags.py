"""MkDocs hook: hides doctest directives in the rendered docstring examples.

mkdocstrings' `trim_doctest_flags` trims `# doctest: +SKIP` only in `>>>`
examples it parses itself, not inside a fenced ```python block of a docstring.
This removes the directive comments from the highlighted HTML, and the `...`
continuation lines that held nothing but one, so a reader sees the code as they
would type it.
"""

from __future__ import annotations

import re

_FLAG = re.compile(r'\s*<span class="c1">#\s*doctest:[^<]*</span>')
# A line (with its line anchor) left holding only a `...` prompt.
_EMPTY_CONTINUATION = re.compile(
    r'(?:<a id="[^"]*"[^>]*></a>)?<span class="o">\.\.\.</span>[ \t]*\n'
)


def strip_doctest_flags(html: str) -> str:
    if "doctest:" not in html:
        return html
    html = _FLAG.sub("", html)
    return _EMPTY_CONTINUATION.sub("", html)


def on_page_content(html, page, config, files):
    return strip_doctest_flags(html)
