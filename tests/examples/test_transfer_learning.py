"""examples/transfer_learning.py on a tiny synthetic dataset: what the table claims.

- task A holds the eight classes other than sandal and shirt, relabelled 0-7;
  task B is sandal (0) vs shirt (1), with `--b-train` training images;
- each row's mean / std / min / max are those of its per-seed test errors, and
  the per-seed errors are those of the runs (one per seed);
- the verdict on the book's "4x" is computed from the mean errors.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from example_helpers import EXAMPLE_BACKEND, assert_png, load_example, read_results

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

VARIANTS = ["B from scratch", "B on A (book)", "B on A (fine_tune)"]
SEEDS = 2


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("transfer_learning")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("transfer_learning")
        rows = example.main(
            [
                "--limit", "1000", "--epochs", "1", "--seeds", str(SEEDS),
                "--b-train", "100", "--b-epochs", "2", "--frozen-epochs", "1",
                "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


def test_table_rows_summarise_the_seeds(run):
    _, rows, output = run
    assert [row["variant"] for row in rows] == VARIANTS
    for row in rows:
        errors = row["errors"]
        assert len(errors) == SEEDS
        assert all(0.0 <= error <= 100.0 for error in errors)
        assert row["mean_error"] == pytest.approx(np.mean(errors), abs=1e-12)
        assert row["std_error"] == pytest.approx(np.std(errors, ddof=1), abs=1e-12)
        assert (row["min_error"], row["max_error"]) == (min(errors), max(errors))
    assert [row["book_error"] for row in rows] == [2.8, 0.7, None]
    record = read_results(output, "transfer_learning")
    assert record["rows"] == rows
    table = (output / "results.md").read_text()
    for variant in VARIANTS:
        assert f"| {variant} |" in table
    assert record["claim"] in table
    assert_png(output / "transfer_learning.png")


def test_test_errors_are_multiples_of_one_test_image(run, synthetic_data_dir):
    example, rows, _ = run
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        data = example._common.load_split("fashion_mnist", limit=1000)
    n_test = len(example.split_tasks(data, 100)["B"]["test"][1])
    for row in rows:
        for error in row["errors"]:
            wrong = error * n_test / 100
            assert wrong == pytest.approx(round(wrong), abs=1e-9)


def test_split_tasks_relabels_a_and_makes_b_binary(run):
    example, _, _ = run
    labels = np.arange(10).repeat(3)
    images = labels.astype("float32")[:, None]  # each image holds its label
    split = example._common.Split(images, labels, images, labels, images, labels,
                                  [str(k) for k in range(10)])  # fmt: skip
    tasks = example.split_tasks(split, n_b_train=4)
    x_a, y_a = tasks["A"]["train"]
    assert sorted(set(x_a[:, 0].astype(int))) == [0, 1, 2, 3, 4, 7, 8, 9]
    np.testing.assert_array_equal(y_a, [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
                                  + [4] * 3 + [5] * 3 + [6] * 3 + [7] * 3)  # fmt: skip
    x_b, y_b = tasks["B"]["train"]
    np.testing.assert_array_equal(x_b[:, 0], [5, 5, 5, 6])
    np.testing.assert_array_equal(y_b, [0, 0, 0, 1])
    assert len(tasks["B"]["test"][1]) == 6


def test_claim_verdict(run):
    example, _, _ = run
    held = example.claim(
        {"B from scratch": [2.8, 3.2], "B on A (book)": [0.6, 0.9], "x": []}
    )
    assert "held here: mean error 3.00 % -> 0.75 % (4.00x)" in held
    assert "for 2 of 2 seeds" in held
    missed = example.claim({"B from scratch": [2.0, 2.0], "B on A (book)": [1.0, 3.0]})
    assert "did not hold here: mean error 2.00 % -> 2.00 % (1.00x)" in missed
    assert "for 1 of 2 seeds" in missed
    assert statistics.fmean([2.8, 3.2]) == 3.0
