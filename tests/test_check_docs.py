"""The docs check (`scripts/check_docs.py`) on small HTML snippets."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import check_docs  # noqa: E402


def _article(body: str, head: str = "") -> str:
    return (
        f"<html><head>{head}</head><body><nav>nav</nav>"
        f"<article>{body}</article></body></html>"
    )


KATEX = '<script src="../assets/katex/katex.min.js"></script>'


def test_prose_text_skips_code_scripts_and_math():
    html = _article(
        "<p>Hello <code>\\frac</code> <span class='arithmatex'>\\(x\\)</span> world</p>"
        "<pre><code>$$ a $$</code></pre><script>var a = '\\\\[';</script>"
    )
    text = check_docs.prose_text(html)
    assert "Hello" in text and "world" in text
    assert "\\frac" not in text and "\\(" not in text and "$$" not in text


def test_prose_text_is_the_article_only():
    html = _article("<p>body</p>").replace("<nav>nav</nav>", "<nav>left undone</nav>")
    assert "left undone" not in check_docs.prose_text(html)
    assert check_docs.prose_text("<p>no article</p>").strip() == "no article"


def test_missing_images_resolves_relative_and_absolute_paths():
    html = _article(
        '<img src="../img/a.png"><img src="img/b.png"/><img src="/c.png">'
        '<img src="https://example.org/d.png"><img src="data:image/png;base64,AA">'
    )
    present = {"img/a.png"}
    page = "plotting/index.html"
    missing = check_docs.missing_images(html, page, present.__contains__)
    assert missing == ["img/b.png", "/c.png"]


def test_missing_images_none_when_all_exist():
    html = _article('<img src="../img/a.png">')
    assert check_docs.missing_images(html, "x/index.html", lambda p: True) == []


@pytest.mark.parametrize(
    "body",
    [
        "<p>\\[ \\mathrm{BN}(x)_c = \\gamma_c \\]</p>",
        "<p>with \\(\\mu\\) the mean</p>",
        "<p>$$ a + b $$</p>",
        "<p>scale \\frac{a}{b}</p>",
    ],
)
def test_raw_latex_is_found(body):
    assert check_docs.raw_latex(_article(body, KATEX))


def test_math_inside_arithmatex_is_not_raw():
    html = _article(
        '<p>with <span class="arithmatex">\\(\\mu\\)</span> and</p>'
        '<div class="arithmatex">\\[ \\frac{a}{b} \\]</div>',
        KATEX,
    )
    assert check_docs.raw_latex(html) == []
    assert not check_docs.math_without_renderer(html)


def test_math_without_a_renderer_is_reported():
    html = _article('<span class="arithmatex">\\(x\\)</span>')
    assert check_docs.math_without_renderer(html)
    assert not check_docs.math_without_renderer(_article("<p>no math</p>"))


def test_run_together_call_arguments_paragraph():
    html = (
        '<details class="call-arguments" open><summary>Call arguments</summary>'
        "<p>inputs: Input tensor of any rank.\ntraining: Ignored; dropout is always "
        "applied.</p></details>"
    )
    assert check_docs.run_together_call_arguments(html)


def test_call_arguments_as_a_list_pass():
    html = (
        '<details class="call-arguments" open><summary>Call arguments</summary>'
        "<ul><li><code>inputs</code>: Input tensor.</li>"
        "<li><code>training</code>: Ignored.</li></ul></details>"
    )
    assert check_docs.run_together_call_arguments(html) == []


def test_call_arguments_in_a_table_pass():
    html = (
        "<p><strong>Call arguments:</strong></p><table><tr><td>inputs</td></tr></table>"
    )
    assert check_docs.run_together_call_arguments(html) == []


def test_prose_mentioning_call_arguments_passes():
    html = "<p>Call arguments are passed through unchanged to the inner layer.</p>"
    assert check_docs.run_together_call_arguments(html) == []


@pytest.mark.parametrize(
    "phrase",
    [
        "the GPU goals of the issue are not measured",
        "## Left undone",
        "faster on 2-D views (see the anchors).",
        "the training jobs of other agents shared the cores",
        "we did not find the cause in the time available",
        "two earlier runs, kept for honesty",
    ],
)
def test_work_log_phrases_are_found(phrase):
    assert check_docs.work_log_phrases(_article(f"<p>{phrase}</p>"))


@pytest.mark.parametrize(
    "text",
    [
        "Report bugs on the issue tracker.",
        "Open issues are welcome.",
        "The layer uses the batch statistics in training.",
    ],
)
def test_user_language_passes(text):
    assert check_docs.work_log_phrases(_article(f"<p>{text}</p>")) == []


def test_work_log_phrases_in_code_are_ignored():
    html = _article("<pre><code># left undone: nothing</code></pre>")
    assert check_docs.work_log_phrases(html) == []


def test_undocumented_names():
    ids = {
        "kerasx.schedules.OneCycle",
        "kerasx.layers.mc_dropout.MCDropout",
        "kerasx.callbacks",
    }
    names = [
        "kerasx.schedules.OneCycle",
        "kerasx.layers.MCDropout",
        "kerasx.callbacks.OneCycleScheduler",
    ]
    assert check_docs.undocumented_names(names, ids) == [
        "kerasx.callbacks.OneCycleScheduler"
    ]


def test_check_site_reports_each_kind(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ok.png").write_bytes(b"")
    page = tmp_path / "page" / "index.html"
    page.parent.mkdir()
    page.write_text(
        _article(
            '<h3 id="kerasx.models.build_mlp">build_mlp</h3>'
            '<img src="../img/ok.png"><img src="../img/gone.png">'
            "<p>\\(x\\) was left undone</p>"
        )
    )
    problems = check_docs.check_site(
        tmp_path, ["kerasx.models.build_mlp", "kerasx.models.build_cnn"]
    )
    text = "\n".join(problems)
    assert "missing image ../img/gone.png" in text
    assert "raw LaTeX" in text
    assert "work-log wording" in text
    assert "kerasx.models.build_cnn: public name without an API entry" in text
    assert "build_mlp:" not in text


def test_check_site_on_an_empty_directory(tmp_path):
    assert check_docs.check_site(tmp_path, []) == [
        f"{tmp_path}: no HTML pages (build the site first)"
    ]


def test_public_names_come_from_all():
    pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    names = check_docs.public_names(ROOT / "src")
    assert "kerasx.schedules.OneCycle" in names
    assert "kerasx.layers.MCDropout" in names
    assert not any(name.rsplit(".", 1)[1].startswith("_") for name in names)


def test_api_overview_hook_links_documented_names(tmp_path):
    pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    import api_overview

    (tmp_path / "schedules.md").write_text("# S\n\n::: kerasx.schedules.OneCycle\n")
    (tmp_path / "layers.md").write_text("::: kerasx.layers.mc_dropout.MCDropout\n")
    table = api_overview.overview_markdown(ROOT / "src", tmp_path)
    assert "[`OneCycle`](schedules.md#kerasx.schedules.OneCycle) | class |" in table
    assert "[`MCDropout`](layers.md#kerasx.layers.mc_dropout.MCDropout)" in table
    # Undocumented names are listed without a link.
    assert "| `OneCycleScheduler` | class |" in table


# -- python blocks on the pages: run by the docs-test, or marked fragments ----

import run_docs_snippets  # noqa: E402

PLANTED = """# Page

```python
x = 1
print(x + 1)
```

```text
2
```

<!-- fragment -->
```python
undefined_name
```

```python
print(undefined_name + x)
```

```py
undefined_too
```
"""


def test_code_blocks_reads_markers_and_shown_output():
    blocks = run_docs_snippets.code_blocks(PLANTED)
    assert [(b.number, b.line, b.language) for b in blocks] == [
        (1, 3, "python"),
        (2, 13, "python"),
        (3, 17, "python"),
        (4, 21, "py"),
    ]
    assert [b.fragment for b in blocks] == [False, True, False, False]
    assert [b.runnable for b in blocks] == [True, False, True, False]
    assert blocks[0].output == "2\n" and blocks[2].output is None


def test_indented_blocks_and_backend_markers():
    text = (
        "- item:\n\n    <!-- backends: tensorflow jax -->\n    ```python\n"
        "    y = 2\n    ```\n"
    )
    (block,) = run_docs_snippets.code_blocks(text)
    assert block.code == "y = 2\n"
    assert block.backends == ["tensorflow", "jax"]


def test_unmarked_non_python_fence_is_reported(tmp_path):
    (tmp_path / "page.md").write_text(PLANTED)
    (tmp_path / "clean.md").write_text("```python\nx = 1\n```\n")
    problems = check_docs.unrun_python_blocks(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("page.md:21: python block ```py is not run")


def test_planted_unmarked_failing_block_fails_with_page_block_and_traceback(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PLANTED)
    results = run_docs_snippets.run_page(page, timeout=60)
    assert [r.status for r in results] == ["passed", "fragment", "failed", "skipped"]
    assert results[0].stdout == "2\n" and results[0].output_mismatch() is None
    failed = results[2]
    assert (failed.number, failed.line) == (3, 17)
    assert "NameError: name 'undefined_name' is not defined" in failed.error
    assert 'page.md:block3", line 18' in failed.error  # the page's own line
    assert failed.describe().startswith(f"{page}, block 3 (line 17) failed:")


def test_shown_output_that_drifted_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nprint('accuracy', 0.91)\n```\n\n```text\naccuracy 0.5\n```\n\n"
        "```python\nprint('loss', 1)\n```\n\n```text\naccuracy 2\n```\n"
    )
    first, second = run_docs_snippets.run_page(page, timeout=60)
    assert first.output_mismatch() is None  # numbers are masked
    assert "differs from what it printed" in second.output_mismatch()


def test_doctest_flags_hook_hides_directives_and_empty_continuations():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    import doctest_flags

    prompt = '<a id="l1"></a><span class="o">&gt;&gt;&gt;</span> f()\n'
    flag = '<span class="c1"># doctest: +SKIP</span>'
    html = (
        prompt
        + f'<a id="l2"></a><span class="o">...</span> {flag}\n'
        + f'<a id="l3"></a><span class="n">x</span>  {flag}\n'
    )
    expected = prompt + '<a id="l3"></a><span class="n">x</span>\n'
    assert doctest_flags.strip_doctest_flags(html) == expected


def test_quoted_prompts_are_found():
    # What Markdown makes of a docstring's `>>> import keras` outside a fence.
    html = _article(
        "<p>Example:</p>\n<blockquote>\n<blockquote>\n<blockquote>\n"
        "<p>import keras\nkeras.ops.ones(2)</p></blockquote></blockquote></blockquote>"
    )
    assert check_docs.quoted_prompts(html) == ["import keras keras.ops.ones(2)"]
    fenced = _article('<div class="highlight"><pre><code>&gt;&gt;&gt; import keras')
    assert check_docs.quoted_prompts(fenced) == []
    assert check_docs.quoted_prompts(_article("<blockquote><p>A quote.</p>")) == []


def test_docstring_lines_rendered_as_quotes_are_found():
    # `... an integer\n>= 0.` in a docstring: Markdown quotes the second line.
    doc = (
        '<div class="doc doc-contents first"><p>If <code>n</code> is not an integer</p>'
        "<blockquote>\n<p>= 0, or <code>None</code>.</p>\n</blockquote>"
        "<p>Example:</p><blockquote><blockquote><blockquote><p>import keras</p>"
        "</blockquote></blockquote></blockquote></div>"
    )
    # A quote on a page of prose is the author's, not a wrapped docstring line.
    prose = "<blockquote><p>A quoted remark.</p></blockquote>"
    assert check_docs.docstring_quotes(_article(prose + doc + prose)) == [
        "= 0, or None."
    ]


# -- keras.io sections in every public docstring ------------------------------

PLANTED_API = '''"""A planted public module."""

import dataclasses

import keras

__all__ = ["LIMIT", "Noise", "Noisier", "Result", "reset", "scale"]

LIMIT = 3
"""The largest factor `scale` takes.

Attributes:
    LIMIT: The number 3.

Example:

```python
>>> from planted.api import LIMIT
>>> LIMIT
3
```
"""


def scale(x: float, factor: int = 2) -> float:
    """Multiplies `x` by `factor`.

    Args:
        x: The number to scale.
        factor: The factor.

    Returns:
        `x * factor`.

    Raises:
        ValueError: If `factor` exceeds `LIMIT`.

    Examples:
        >>> from planted.api import scale
        >>> scale(2.0)
        4.0
    """
    return x * factor


def reset(x: float) -> None:
    """Resets `x`.

    Args:
        x: The number to reset.

    Raises:
        TypeError: If `x` is not a number.

    Example:

    ```python
    >>> from planted.api import reset
    >>> reset(1.0)
    ```
    """


class Noise(keras.layers.Layer):
    """Adds noise.

    Args:
        stddev: The noise's standard deviation.

    Input shape:
        Arbitrary, any rank.

    Output shape:
        Same shape as the input.

    Raises:
        ValueError: If `stddev` is negative.

    Example:

    ```python
    >>> from planted.api import Noise
    >>> Noise(0.1).stddev
    0.1
    ```
    """

    def __init__(self, stddev: float, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev


class Noisier(Noise):
    """Adds more noise; its `__init__` documents the arguments.

    Input shape:
        Arbitrary.

    Output shape:
        Same shape as input.

    Example:

    ```python
    >>> from planted.api import Noisier
    >>> Noisier(0.1).stddev
    0.1
    ```
    """

    def __init__(self, stddev: float, **kwargs):
        """Builds the layer.

        Args:
            stddev: Half the noise.

        Raises:
            ValueError: If `stddev` is not a float.
        """
        super().__init__(stddev, **kwargs)


@dataclasses.dataclass(frozen=True)
class Result:
    """What `scale` found.

    Attributes:
        value: The scaled number.

    Raises:
        dataclasses.FrozenInstanceError: On assignment.

    Example:

    ```python
    >>> from planted.api import Result
    >>> Result(1.0).value
    1.0
    ```
    """

    value: float
'''
PLANTED_NAMES = ("LIMIT", "Noise", "Noisier", "Result", "reset", "scale")


def _planted_problems(tmp_path, source: str) -> list[str]:
    pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    package = tmp_path / "planted"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text('"""Planted."""\n')
    (package / "api.py").write_text(source)
    objects = check_docs.public_objects(tmp_path, package="planted", modules=("api",))
    assert [name for name, _ in objects] == [f"planted.api.{n}" for n in PLANTED_NAMES]
    return check_docs.section_problems(objects)


def _without(text: str, start: str, end: str) -> str:
    """`text` without the one block from `start` up to (not including) `end`."""
    assert text.count(start) == 1, start
    first = text.index(start)
    return text[:first] + text[text.index(end, first + len(start)) :]


SECTION_CASES = [
    (
        "    Args:\n        x: The number to scale.",
        "    Returns:",
        "scale: `Args:`",
    ),
    ("    Returns:\n        `x * factor`.", "    Raises:", "scale: `Returns:`"),
    (
        "    Raises:\n        ValueError: If `factor`",
        "    Examples:",
        "scale: `Raises:`",
    ),
    (
        "    Examples:\n        >>> from planted.api import scale",
        '    """\n    return x * factor',
        "scale: `Example:`",
    ),
    (
        "    Example:\n\n    ```python\n    >>> from planted.api import reset",
        '    """\n\n\nclass Noise',
        "reset: `Example:`",
    ),
    (
        "    Args:\n        stddev: The noise's",
        "    Input shape:",
        "Noise: `Args:`",
    ),
    (
        "    Input shape:\n        Arbitrary, any rank.",
        "    Output shape:\n        Same shape as the input.",
        "Noise: `Input shape:`",
    ),
    (
        "    Output shape:\n        Same shape as the input.",
        "    Raises:\n        ValueError: If `stddev` is negative.",
        "Noise: `Output shape:`",
    ),
    (
        "    Raises:\n        ValueError: If `stddev` is negative.",
        "    Example:\n\n    ```python\n    >>> from planted.api import Noise\n",
        "Noise: `Raises:`",
    ),
    # A layer by its kerasx base, with the arguments in `__init__`'s docstring.
    (
        "    Output shape:\n        Same shape as input.",
        "    Example:\n\n    ```python\n    >>> from planted.api import Noisier",
        "Noisier: `Output shape:`",
    ),
    (
        "        Args:\n            stddev: Half",
        "        Raises:",
        "Noisier: `Args:`",
    ),
    (
        "        Raises:\n            ValueError: If `stddev` is not",
        '        """\n        super().__init__(stddev',
        "Noisier: `Raises:`",
    ),
    ("    Attributes:\n        value:", "    Raises:", "Result: `Attributes:`"),
]


@pytest.mark.parametrize(
    ("start", "end", "expected"), SECTION_CASES, ids=[c[2] for c in SECTION_CASES]
)
def test_a_planted_missing_section_is_reported(tmp_path, start, end, expected):
    # Control: the complete module passes (`reset`, `-> None`, needs no
    # `Returns:`; `LIMIT` no `Raises:`), so what is reported is the plant.
    assert _planted_problems(tmp_path, PLANTED_API) == []
    name, _, section = expected.partition(": ")
    assert _planted_problems(tmp_path, _without(PLANTED_API, start, end)) == [
        f"planted.api.{name}: docstring has no {section} section"
    ]


def test_an_example_without_prompts_is_reported(tmp_path):
    assert _planted_problems(tmp_path, PLANTED_API) == []
    planted = PLANTED_API.replace(
        "    >>> from planted.api import Noise\n    >>> Noise(0.1).stddev\n    0.1\n",
        "    noise = Noise(0.1)\n",
    )
    assert _planted_problems(tmp_path, planted) == [
        "planted.api.Noise: its `Example:` section has no `>>>` example"
    ]


@pytest.mark.parametrize("title", ["    Example:\n\n", "    Example:\n"])
def test_an_unfenced_example_is_reported(tmp_path, title):
    # Bare `>>>` lines under `Example:` (flush, or indented: an admonition)
    # stay Markdown, where they are quotes of quotes.
    assert _planted_problems(tmp_path, PLANTED_API) == []
    indent = "    " if title.endswith(":\n") else ""
    fenced = (
        "    Example:\n\n    ```python\n    >>> from planted.api import reset\n"
        "    >>> reset(1.0)\n    ```\n"
    )
    bare = (
        f"{title}{indent}    >>> from planted.api import reset\n"
        f"{indent}    >>> reset(1.0)\n"
    )
    assert fenced in PLANTED_API
    assert _planted_problems(tmp_path, PLANTED_API.replace(fenced, bare)) == [
        "planted.api.reset: its `Example:` has `>>>` lines outside a code fence, "
        "which render as quoted text: indent them under `Examples:` or fence them"
    ]


def test_a_missing_docstring_is_reported_not_raised(tmp_path):
    first = PLANTED_API.index('    """Resets `x`.')
    last = PLANTED_API.index("\n\n\nclass Noise(")
    planted = PLANTED_API[:first] + "    return None" + PLANTED_API[last:]
    assert _planted_problems(tmp_path, planted) == ["planted.api.reset: no docstring"]


def test_a_module_griffe_cannot_read_is_named(tmp_path):
    pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    with pytest.raises(ValueError, match=r"planted\.api could not be read"):
        _planted_problems(tmp_path, PLANTED_API.replace("def scale(", "def scale(("))


def test_layers_are_recognised_through_kerasx_bases(tmp_path):
    _planted_problems(tmp_path, PLANTED_API)
    objects = check_docs.public_objects(tmp_path, package="planted", modules=("api",))
    targets = {name: obj.final_target if obj.is_alias else obj for name, obj in objects}
    layers = {
        name.rpartition(".")[2]: check_docs._is_layer(obj)
        for name, obj in targets.items()
        if obj.kind.value == "class"
    }
    assert layers == {"Noise": True, "Noisier": True, "Result": False}


def test_section_check_on_kerasx_reports_without_raising():
    # While the docstrings are being completed, the check lists what is
    # missing, one line per name and section, and never fails to read one.
    pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    objects = check_docs.public_objects(ROOT / "src")
    problems = check_docs.section_problems(objects)
    names = {name for name, _ in objects}
    assert all(p.split(": ", 1)[0] in names for p in problems)
    assert not [p for p in problems if "could not read" in p or "no docstring" in p]


# -- [source] links on the API headings ----------------------------------------

PREFIX = "https://github.com/owner/repo/blob/v1.0/"
SOURCE = (
    '"""Module."""\n\nimport keras\n\n\n'
    '@keras.saving.register_keras_serializable(\n    package="x"\n)\n'
    "class Thing:\n"
    '    """A thing."""\n\n    def method(self):\n        return 1\n\n\n'
    "LIMIT: int = 3\n"
)  # Thing's decorator is line 6, its class line 9; LIMIT is line 16.


def _source_repo(tmp_path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "mod.py").write_text(SOURCE)
    return tmp_path


SOURCE_CASES = [
    (f"{PREFIX}src/pkg/mod.py#L6", None),
    (f"{PREFIX}src/pkg/mod.py#L9", None),
    (
        "https://github.com/owner/repo/blob/main/src/pkg/mod.py#L6",
        f"does not start with {PREFIX}",
    ),
    (f"{PREFIX}src/pkg/mod.py", "has no #L<line> anchor"),
    (
        f"{PREFIX}src/pkg/gone.py#L6",
        "points to src/pkg/gone.py, which is not a file of the repository",
    ),
    (
        f"{PREFIX}src/pkg/mod.py#L99",
        "points past the end of src/pkg/mod.py (16 lines)",
    ),
    (
        f"{PREFIX}src/pkg/mod.py#L13",
        "points inside a block of src/pkg/mod.py: '        return 1'",
    ),
    (
        f"{PREFIX}src/pkg/mod.py#L16",
        "points to a line of src/pkg/mod.py that does not define Thing: "
        "'LIMIT: int = 3'",
    ),
]


@pytest.mark.parametrize(
    ("href", "problem"),
    SOURCE_CASES,
    ids=[(p or "ok") + " " + h.rpartition("/")[2] for h, p in SOURCE_CASES],
)
def test_source_link_problems(tmp_path, href, problem):
    repo = _source_repo(tmp_path)
    problems = check_docs.source_link_problems(
        ["pkg.Thing"], {"pkg.mod.Thing": [href]}, repo, PREFIX
    )
    expected = [] if problem is None else [f"pkg.Thing: [source] link {href} {problem}"]
    assert problems == expected


def test_a_heading_without_a_source_link_is_reported(tmp_path):
    repo = _source_repo(tmp_path)
    links = {"pkg.LIMIT": [f"{PREFIX}src/pkg/mod.py#L16"]}
    problems = check_docs.source_link_problems(
        ["pkg.LIMIT", "pkg.Thing"], links, repo, PREFIX
    )
    assert problems == ["pkg.Thing: API heading without a [source] link"]


def test_check_site_reads_source_links_inside_headings(tmp_path):
    repo = _source_repo(tmp_path / "repo")
    site = tmp_path / "site"
    (site / "page").mkdir(parents=True)
    heading = (
        '<h3 id="pkg.mod.Thing" class="doc doc-heading"><span>Thing</span>'
        '<a href="#pkg.mod.Thing" class="headerlink">&para;</a>{link}</h3>'
    )
    link = f'<a class="doc-source-link" href="{PREFIX}src/pkg/mod.py#L6">[source]</a>'
    # A source link outside the heading does not count.
    page = _article(heading.format(link="") + f"<p>{link}</p>")
    (site / "page" / "index.html").write_text(page)
    assert check_docs.check_site(site, ["pkg.Thing"], repo, PREFIX) == [
        "pkg.Thing: API heading without a [source] link"
    ]
    (site / "page" / "index.html").write_text(_article(heading.format(link=link)))
    assert check_docs.check_site(site, ["pkg.Thing"], repo, PREFIX) == []
    # Without a repository the links are not checked (the other checks run).
    assert check_docs.check_site(site, ["pkg.Thing"]) == []


def test_source_prefix_reads_repo_url_and_version():
    version = re.search(
        r'__version__ = "([^"]+)"', (ROOT / "src/kerasx/_version.py").read_text()
    ).group(1)
    assert check_docs.source_prefix(ROOT) == (
        f"https://github.com/kerasx/kerasx/blob/v{version}/"
    )


def _source_links_hook():
    pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    import source_links

    return source_links


def test_source_links_hook_adds_a_link_to_api_headings():
    source_links = _source_links_hook()
    heading = (
        '<h3 id="kerasx.schedules.OneCycle" class="doc doc-heading">\n'
        '<span class="doc doc-object-name">kerasx.schedules.OneCycle</span>\n'
        '<a href="#kerasx.schedules.OneCycle" class="headerlink">&para;</a></h3>'
    )
    member = heading.replace("OneCycle", "OneCycle.momentum")
    plain = '<h2 id="api">API</h2>'
    urls = {"kerasx.schedules.OneCycle": "https://example.org/s.py#L7&x"}
    html = source_links.add_source_links(plain + heading + member, urls.get)
    link = (
        '<a class="doc-source-link" href="https://example.org/s.py#L7&amp;x" '
        'title="Source code on GitHub" data-search-exclude>[source]</a>'
    )
    assert html == plain + heading.replace("</h3>", link + "</h3>") + member
    # A second pass adds nothing.
    assert source_links.add_source_links(html, urls.get) == html


def _definition_line(path: Path, statement: str) -> int:
    """The line of `statement` in `path`, or of the first decorator above it."""
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith(statement))
    while line > 0 and (
        lines[line - 1].startswith("@") or lines[line - 1][:1] in {" ", ")"}
    ):
        line -= 1
    return line + 1


def test_source_locator_points_at_the_definition():
    source_links = _source_links_hook()
    locate = source_links.SourceLocator(ROOT, "https://github.com/kerasx/kerasx/")
    version = re.search(
        r'__version__ = "([^"]+)"', (ROOT / "src/kerasx/_version.py").read_text()
    ).group(1)
    base = f"https://github.com/kerasx/kerasx/blob/v{version}/"
    one_cycle = "src/kerasx/callbacks/one_cycle.py"
    line = _definition_line(ROOT / one_cycle, "class OneCycleScheduler(")
    assert locate("kerasx.callbacks.OneCycleScheduler") == f"{base}{one_cycle}#L{line}"
    rewrite = "src/kerasx/transforms/_rewrite.py"
    line = _definition_line(ROOT / rewrite, "SKIP: Final = ")
    assert locate("kerasx.transforms.SKIP") == f"{base}{rewrite}#L{line}"
    # Members, modules and unknown names get no link.
    assert locate("kerasx.callbacks.OneCycleScheduler.from_schedule") is None
    assert locate("kerasx.callbacks") is None
    assert locate("kerasx.callbacks.Missing") is None
    assert locate("keras.layers.Dense") is None


def test_hook_links_pass_the_source_check():
    # Every public name, linked by the hook, passes check_docs' link check.
    source_links = _source_links_hook()
    locate = source_links.SourceLocator(ROOT, "https://github.com/kerasx/kerasx")
    names = check_docs.public_names(ROOT / "src")
    page = "".join(
        f'<h3 id="{name}" class="doc doc-heading"><span>{name}</span></h3>'
        for name in names
    )
    page = check_docs.parse(source_links.add_source_links(_article(page), locate))
    assert sorted(page.source_links) == sorted(names)
    prefix = check_docs.source_prefix(ROOT)
    assert check_docs.source_link_problems(names, page.source_links, ROOT, prefix) == []


def test_pages_forked_from_the_zygote_share_no_state(tmp_path):
    """A page's settings, imports and files do not reach the next page.

    Plant: run both pages in one process (or one namespace) and the second
    prints float64, True, True and 1.
    """
    first = tmp_path / "first.md"
    first.write_text(
        "```python\nimport sys\nimport keras\nkeras.config.set_floatx('float64')\n"
        "sys.modules['planted_module'] = sys\nplanted = 1\n"
        "open('planted.txt', 'w').close()\n```\n"
    )
    second = tmp_path / "second.md"
    second.write_text(
        "```python\nimport os\nimport sys\nimport keras\n"
        "print(keras.config.floatx(), 'planted_module' in sys.modules,\n"
        "      os.path.exists('planted.txt'), globals().get('planted'))\n```\n"
    )
    assert not run_docs_snippets.sets_environment(first)
    (ran_first,) = run_docs_snippets.run_page(first, timeout=60)
    (ran_second,) = run_docs_snippets.run_page(second, timeout=60)
    assert ran_first.status == ran_second.status == "passed", ran_second.error
    assert ran_second.stdout == "float32 False False None\n"


def test_a_page_that_sets_the_environment_runs_in_a_new_interpreter(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nimport os\nimport sys\nos.environ['KERASX_PLANTED'] = '1'\n"
        "print('keras' in sys.modules)\n```\n"
    )
    assert run_docs_snippets.sets_environment(page)
    (result,) = run_docs_snippets.run_page(page, timeout=60)
    # A forked page would find keras imported already by the zygote.
    assert (result.status, result.stdout) == ("passed", "False\n")


def test_a_crashing_page_is_reported_with_its_exit_status(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nimport os\nprint('before')\nos._exit(3)\n```\n")
    (result,) = run_docs_snippets.run_page(page, timeout=60)
    assert result.status == "failed"
    assert "the page's process ended early" in result.error
    assert "status 3" in result.error


def test_a_page_past_its_timeout_is_killed_and_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nimport time\ntime.sleep(60)\n```\n")
    start = time.perf_counter()
    (result,) = run_docs_snippets.run_page(page, timeout=2)
    assert time.perf_counter() - start < 30
    assert result.status == "failed"
    assert "timed out after 2 s" in result.error


# --- Figures from results files (docs/hooks/results.py, unsourced_figures) ---

_RESULTS = '{"ece": 0.0437, "speedup": 1.2345, "rows": [{"name": "a", "t": 0.5}]}'
_MARKED_PAGE = (
    "<!-- results-table: res/run.json#rows\n| name | t |\n| {name} | {t:.2f} |\n-->\n\n"
    "ECE <!-- result: #ece:.3f -->, {figure} faster.\n\n"
    "```text\n0.999 in a code block is no figure\n```\n"
)


def _results_docs(tmp_path, figure, other=None):
    docs = tmp_path / "docs"
    (docs / "res").mkdir(parents=True)
    (docs / "res" / "run.json").write_text(_RESULTS)
    (docs / "page.md").write_text(_MARKED_PAGE.replace("{figure}", figure))
    if other is not None:
        (docs / "other.md").write_text(other)
    return docs


def test_the_results_hook_renders_tables_and_figures(tmp_path):
    docs = _results_docs(tmp_path, "1.23×")
    hook = check_docs._results_hook()
    text, rendered = hook.render((docs / "page.md").read_text(), docs)
    assert text.startswith(
        "| name | t |\n|---|---|\n| a | 0.50 |\n\nECE 0.044, 1.23× faster."
    )
    assert "0.999 in a code block" in text
    assert [r.text for r in rendered] == ["a", "0.50", "0.044"]
    assert hook.evaluate("(speedup - 1) * 100", {"speedup": 1.25}) == 25.0


def test_the_results_hook_joins_lists_and_reads_keys_with_spaces():
    hook = check_docs._results_hook()
    row = {"files": ["a.json", "a.h5"], "extra": {"test accuracy": 0.91234}}
    assert hook.format_value(row["files"], "join") == "a.json, a.h5"
    assert hook.format_value([1.5, 0.25], "join.2f") == "1.50, 0.25"
    assert hook.evaluate("extra.test_accuracy", row) == 0.91234
    with pytest.raises(hook.ResultsError, match=r"cannot join 0\.91234"):
        hook.format_value(0.91234, "join")
    with pytest.raises(hook.ResultsError, match=r"no key 'extra\.test_loss'"):
        hook.evaluate("extra.test_loss", row)
    run = {"command": "python x.py", "wall_seconds": 779.4, "versions": {"keras": "3"}}
    assert hook.describe_run(run) == "*Run: `python x.py`; 12 min 59 s; keras 3.*"


def test_a_null_cell_renders_the_null_text_of_the_marker(tmp_path):
    rows = [{"name": "a", "share": 0.224}, {"name": "b", "share": None}]
    (tmp_path / "a.json").write_text(json.dumps({"rows": rows}))
    template = "| name | share |\n| {name} | {share * 100:.0f} % |\n"
    hook = check_docs._results_hook()
    marked = f"<!-- results-table: a.json#rows\n{template}null: -\n-->\n"
    assert hook.render(marked, tmp_path)[0] == (
        "| name | share |\n|---|---|\n| a | 22 % |\n| b | - |\n"
    )
    plain = f"<!-- results-table: a.json#rows\n{template}-->\n"
    assert hook.render(plain, tmp_path)[0].endswith("| b |  |\n")
    # Quoted keys (spaces, `:` and `,` in them) and `?` for a key a row lacks.
    (tmp_path / "b.json").write_text(
        json.dumps({"rows": [{"x": {"a: b, c": 1.5}}, {"x": {}}]})
    )
    quoted = '<!-- results-table: b.json#rows\n| v |\n| {x."a: b, c"?:.2f} |\n-->\n'
    assert hook.render(quoted, tmp_path)[0] == "| v |\n|---|\n| 1.50 |\n|  |\n"
    with pytest.raises(hook.ResultsError, match="no key"):
        hook.render(quoted.replace("?", ""), tmp_path)
    plus = {"a + b": {"x": 2.0}, "y": 0.5}
    (tmp_path / "c.json").write_text(json.dumps(plus))
    figure = '<!-- result: c.json#"a + b".x + y:.1f -->'
    assert hook.render(figure, tmp_path)[0] == "2.5"
    assert hook.referenced_files(figure, tmp_path) == ["c.json"]


def test_a_results_table_joins_the_rows_of_several_files(tmp_path):
    for name, backend, ms in (("a", "tensorflow", 1.5), ("b", "jax", 2.25)):
        data = {"backend": backend, "results": [{"ms": ms}, {"ms": ms * 2}]}
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    page = (
        "<!-- results-table: a.json#results + b.json#results\n"
        "| backend | ms |\n| {@file.backend} | {ms:.2f} |\n-->\n"
    )
    hook = check_docs._results_hook()
    text, _ = hook.render(page, tmp_path)
    assert text == (
        "| backend | ms |\n|---|---|\n| tensorflow | 1.50 |\n| tensorflow | 3.00 |"
        "\n| jax | 2.25 |\n| jax | 4.50 |\n"
    )
    assert hook.referenced_files(page, tmp_path) == ["a.json", "b.json"]


def test_an_unsourced_figure_on_a_page_with_markers_fails(tmp_path):
    # 1.23 is speedup 1.2345 at the literal's two decimals: sourced.
    assert check_docs.unsourced_figures(_results_docs(tmp_path / "a", "1.23×")) == []
    (problem,) = check_docs.unsourced_figures(_results_docs(tmp_path / "b", "1.24×"))
    assert problem.startswith("page.md: '1.24×' is in no results file the page names")
    # Listed as unsourced, it passes.
    listed = _results_docs(tmp_path / "c", "1.24× <!-- results-unsourced: 1.24x -->")
    assert check_docs.unsourced_figures(listed) == []


def test_an_unsourced_figure_on_a_page_without_markers_fails(tmp_path):
    other = "It is 9.87× faster, in 2.5 s, at rate 0.01 on Python 3.11.\n"
    docs = _results_docs(tmp_path / "a", "1.23×", other=other)
    assert check_docs.unsourced_figures(docs) == [
        f"other.md: '{figure}' is in no results file the page names none: render "
        "it with a <!-- result: --> marker, or list it in <!-- results-settings: "
        "--> or <!-- results-unsourced: -->"
        for figure in ("9.87×", "2.5 s", "0.01", "3.11")
    ]
    listed = other + (
        "<!-- results-settings: 0.01, 3.11 (a rate and a version) -->\n"
        "<!-- results-unsourced: 9.87x, 2.5s (a run that wrote no file) -->\n"
    )
    docs = _results_docs(tmp_path / "b", "1.23×", other=listed)
    assert check_docs.unsourced_figures(docs) == []
    # A paragraph linking to the page whose files hold the figure passes.
    cites = "As [the run](page.md) shows, 1.23× faster.\n"
    assert check_docs.unsourced_figures(_results_docs(tmp_path / "c", "x", cites)) == []


def test_a_page_contradicting_a_page_with_markers_fails(tmp_path):
    clean = "The [run](page.md) has ECE 0.044 and 4.37 %.\n"
    docs = _results_docs(tmp_path / "a", "1.23×", other=clean)
    assert check_docs.unsourced_figures(docs) == []
    planted = "The [run](page.md#results) has ECE 0.045.\n"
    docs = _results_docs(tmp_path / "b", "1.23×", other=planted)
    assert check_docs.unsourced_figures(docs) == [
        "other.md: '0.045' in a paragraph citing page.md: that page neither "
        "renders it nor do its results files hold it"
    ]
