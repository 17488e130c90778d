"""The example pages show the recorded full runs as the scripts print them.

Each example writes `results.json`; the run behind a docs page is kept in
`docs/examples/results/<example>.json` and the page's tables are rendered from
it by `docs/hooks/results.py`. Here the script's own table formatter
(`_common.format_table`) is applied to the recorded rows: every line it prints
must be on the rendered page, so a page template that drops a column, rounds
differently or reads another row fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from example_helpers import EXAMPLE_BACKEND, load_example, rendered_page

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: Examples whose results file is the `_common.report` form (`run` + `results`
#: rows), and whether the page shows a `--quick` run (else a full-data one).
TABLE_EXAMPLES = {
    "mnist_mlp": False,
    "cnn_cifar10": False,
    "why_deep_nets_were_hard": True,
    "schedules_and_saving": False,
    "deep_mlp": False,
}


@pytest.mark.parametrize("name", TABLE_EXAMPLES)
def test_page_shows_the_recorded_run(name):
    recorded = json.loads(
        (DOCS / "examples" / "results" / f"{name}.json").read_text(encoding="utf-8")
    )
    run = recorded["run"]
    assert run["command"].startswith(f"KERAS_BACKEND=tensorflow python examples/{name}")
    assert ("--quick" in run["command"]) == TABLE_EXAMPLES[name]
    assert "--limit" not in run["command"]
    common = load_example(name)._common
    rows = [common.Row(**row) for row in recorded["results"]]
    page = rendered_page(name)
    for line in common.format_table(rows).splitlines():
        assert line in page, line
    assert f"*Run: `{run['command']}`" in page


def test_transfer_learning_page_shows_the_recorded_run():
    recorded = json.loads(
        (DOCS / "examples" / "results" / "transfer_learning.json").read_text()
    )
    assert "--quick" not in recorded["run"]["command"]
    example = load_example("transfer_learning")
    page = rendered_page("transfer_learning")
    for line in example.format_table(recorded["rows"]).splitlines():
        assert line in page, line
    assert recorded["claim"] in page
    assert f"*Run: `{recorded['run']['command']}`" in page
