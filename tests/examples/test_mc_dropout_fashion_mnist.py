"""examples/mc_dropout_fashion_mnist.py: runs, reports consistent numbers."""

from __future__ import annotations

from example_helpers import assert_png, load_example


def test_quick_run_reports_consistent_metrics(kerasx_data, tmp_path, capsys):
    example = load_example("mc_dropout_fashion_mnist")
    report = example.main(["--quick", "--out", str(tmp_path)])
    assert report["n_samples"] == 10 and report["n_test"] == 200
    for arm in ("predict", "mc_dropout"):
        scores = report[arm]
        assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["ece"] <= 1.0
        assert scores["nll"] >= 0.0 and 0.0 <= scores["brier"] <= 2.0
    n_wrong = round((1 - report["mc_dropout"]["accuracy"]) * report["n_test"])
    assert report["misclassified"] == n_wrong
    for values in report["uncertainty"].values():
        assert set(values) == {"correct", "misclassified"}
    assert_png(tmp_path / "reliability.png")
    table = capsys.readouterr().out
    assert "| accuracy |" in table and "| mutual_information |" in table
