"""Regenerates tests/fixtures/one_cycle_torch.json from PyTorch's OneCycleLR.

Run it in a separate environment with PyTorch (never in the project venv):

    python3.11 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python scripts/generate_one_cycle_fixture.py

For each configuration it records the learning rate and the momentum (SGD
`momentum`, or Adam `beta_1` for the `betas` configurations) that PyTorch uses
for optimizer steps 0 .. total_steps - 1. PyTorch refuses to step past
`total_steps`; kerasx clamps there, so the fixture also stores `past_end`: the
steps after the cycle and the value they must equal (PyTorch's final value).
"""

from __future__ import annotations

import json
import pathlib

import torch

CONFIGS = [
    dict(
        max_lr=0.1,
        total_steps=100,
        pct_start=0.3,
        anneal_strategy="cos",
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
        optimizer="sgd",
    ),
    dict(
        max_lr=0.5,
        total_steps=57,
        pct_start=0.25,
        anneal_strategy="linear",
        div_factor=10.0,
        final_div_factor=100.0,
        three_phase=False,
        optimizer="sgd",
    ),
    dict(
        max_lr=3e-3,
        total_steps=80,
        pct_start=0.4,
        anneal_strategy="cos",
        div_factor=5.0,
        final_div_factor=1e3,
        three_phase=True,
        optimizer="adam",
    ),
    dict(
        max_lr=1.0,
        total_steps=31,
        pct_start=0.2,
        anneal_strategy="linear",
        div_factor=20.0,
        final_div_factor=1e5,
        three_phase=True,
        optimizer="adam",
    ),
    dict(
        max_lr=2e-2,
        total_steps=7,
        pct_start=0.5,
        anneal_strategy="cos",
        div_factor=2.0,
        final_div_factor=50.0,
        three_phase=False,
        optimizer="sgd",
    ),
]
BASE_MOMENTUM, MAX_MOMENTUM = 0.8, 0.9
PAST_END = 5


def record(config: dict) -> dict:
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    if config["optimizer"] == "sgd":
        optimizer = torch.optim.SGD([param], lr=1.0, momentum=0.9)
    else:
        optimizer = torch.optim.Adam([param], lr=1.0, betas=(0.9, 0.999))
    kwargs = {k: v for k, v in config.items() if k != "optimizer"}
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, base_momentum=BASE_MOMENTUM, max_momentum=MAX_MOMENTUM, **kwargs
    )
    rates, momenta = [], []
    for step in range(config["total_steps"]):
        group = optimizer.param_groups[0]
        rates.append(float(group["lr"]))
        momenta.append(
            float(group["betas"][0] if "betas" in group else group["momentum"])
        )
        optimizer.step()
        if step < config["total_steps"] - 1:
            scheduler.step()
    total = config["total_steps"]
    return {
        "config": config,
        "base_momentum": BASE_MOMENTUM,
        "max_momentum": MAX_MOMENTUM,
        "learning_rates": rates,
        "momenta": momenta,
        "past_end": {
            "steps": list(range(total, total + PAST_END)),
            "learning_rate": rates[-1],
            "momentum": momenta[-1],
        },
    }


def main() -> None:
    out = (
        pathlib.Path(__file__).resolve().parents[1]
        / "tests/fixtures/one_cycle_torch.json"
    )
    data = {"torch_version": torch.__version__, "cases": [record(c) for c in CONFIGS]}
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} ({len(CONFIGS)} configurations)")


if __name__ == "__main__":
    main()
