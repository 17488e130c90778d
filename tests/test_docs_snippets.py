"""Runs the python blocks of every docs page (scripts/run_docs_snippets.py).

Each page's blocks run in order in a process of their own (forked from a
zygote that has imported keras and kerasx) on the current KERAS_BACKEND, in
quick mode (KERASX_DOCS_QUICK=1: 512 training images, at most 2 epochs).
Pages run two at a time (KERASX_DOCS_WORKERS), so the whole docs-test costs
about the slowest pages' time, not their sum.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import run_docs_snippets  # noqa: E402

PAGES = run_docs_snippets.pages()


@pytest.fixture(scope="module")
def page_results():
    workers = int(os.environ.get("KERASX_DOCS_WORKERS", "2"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = pool.map(run_docs_snippets.run_page, PAGES)
        return dict(zip(PAGES, runs, strict=True))


def test_pages_are_found():
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"docs/quickstart.md", "docs/uncertainty.md", "docs/index.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_blocks_run(page, page_results):
    results = page_results[page]
    problems = [r.describe() for r in results if r.status == "failed"]
    problems += [m for m in (r.output_mismatch() for r in results) if m]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
    ran = [r for r in results if r.status == "passed"]
    if not ran:
        reasons = {r.reason for r in results if r.status == "skipped"}
        pytest.skip("; ".join(sorted(reasons)) or "only fragments")
