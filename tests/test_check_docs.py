"""The docs check (`scripts/check_docs.py`) on small HTML snippets."""

from __future__ import annotations

import sys
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
