"""All six examples take the same flags, through examples/_common.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_helpers import load_example

EXAMPLES = [
    "cnn_cifar10",
    "deep_mlp",
    "mc_dropout_fashion_mnist",
    "mnist_mlp",
    "schedules_and_saving",
    "why_deep_nets_were_hard",
]


@pytest.mark.parametrize("name", EXAMPLES)
def test_common_flags(name, tmp_path):
    example = load_example(name)
    argv = [
        "--quick", "--dataset", "mnist", "--epochs", "4", "--output",
        str(tmp_path / "out"), "--seed", "7", "--quiet", "--limit", "300",
    ]  # fmt: skip
    args = example._common.parse(example.build_parser(), argv)
    assert (args.quick, args.dataset, args.epochs, args.seed) == (True, "mnist", 4, 7)
    assert (args.quiet, args.verbose, args.limit) == (True, 0, 300)
    assert args.output == Path(tmp_path / "out") and args.output.is_dir()


@pytest.mark.parametrize("name", EXAMPLES)
def test_quick_defaults(name, tmp_path):
    example = load_example(name)
    parser = example.build_parser()
    args = example._common.parse(parser, ["--quick", "--output", str(tmp_path)])
    defaults = parser.parse_args([])
    assert args.epochs == defaults._quick_epochs
    assert args.limit == defaults._quick_limit


def test_bad_values_exit_with_usage(tmp_path, capsys):
    example = load_example("deep_mlp")
    with pytest.raises(SystemExit) as info:
        example._common.parse(
            example.build_parser(), ["--epochs", "0", "--output", str(tmp_path)]
        )
    assert info.value.code == 2
    assert "--epochs must be >= 1, got 0" in capsys.readouterr().err
