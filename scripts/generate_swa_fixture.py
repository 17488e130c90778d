"""Regenerates tests/fixtures/swa_peers.json from PyTorch's `torch.optim.swa_utils`.

Run it with any Python that has PyTorch and NumPy (the project's CI venv has
the CPU build; a separate venv works as well):

    python3.11 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python scripts/generate_swa_fixture.py

Records, for a small MLP with two BatchNorm layers
(Linear(4, 6) -> BatchNorm1d(6) -> ReLU -> Linear(6, 5) -> BatchNorm1d(5) ->
ReLU -> Linear(5, 3)):

- `weights`: a fixed sequence of weight sets drawn from a seeded NumPy
  generator, in Keras order and layout (Dense kernels `(in, out)`, i.e. the
  transposed `nn.Linear.weight`);
- `average`: `AveragedModel(model).update_parameters` over the sequence;
- `update_bn`: the running statistics `update_bn` then computes on `data`
  (fixed batches of `batch_size` rows), with the unbiased variance PyTorch
  keeps, and the averaged model's eval-mode outputs on `data` once each
  `running_var` is rescaled by `(n - 1) / n` to Keras' biased convention;
- `swalr`: the learning rate of `SWALR` right after construction and after each
  of its `steps` steps, for three configurations.
"""

from __future__ import annotations

import itertools
import json
import pathlib

import numpy as np
import torch
from torch.optim import swa_utils

SEED = 2017
SIZES = (4, 6, 5, 3)
N_WEIGHT_SETS = 5
N_ROWS, BATCH_SIZE = 12, 4
SWALR_CONFIGS = [
    dict(lr=0.1, swa_lr=0.01, anneal_epochs=3, anneal_strategy="cos", steps=7),
    dict(lr=0.5, swa_lr=0.05, anneal_epochs=4, anneal_strategy="linear", steps=7),
    dict(lr=0.2, swa_lr=0.02, anneal_epochs=0, anneal_strategy="cos", steps=3),
]


def build_model() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]),
        torch.nn.BatchNorm1d(SIZES[1]),
        torch.nn.ReLU(),
        torch.nn.Linear(SIZES[1], SIZES[2]),
        torch.nn.BatchNorm1d(SIZES[2]),
        torch.nn.ReLU(),
        torch.nn.Linear(SIZES[2], SIZES[3]),
    )


def weight_set(rng: np.random.Generator) -> list[np.ndarray]:
    """Keras order: dense kernel, bias, bn gamma, beta, ..., output kernel, bias."""
    arrays = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(SIZES)):
        arrays.append(rng.normal(0.0, 0.7, (fan_in, fan_out)))
        arrays.append(rng.normal(0.0, 0.3, (fan_out,)))
        if index < len(SIZES) - 2:
            arrays.append(rng.uniform(0.5, 1.5, (fan_out,)))
            arrays.append(rng.normal(0.0, 0.3, (fan_out,)))
    return [array.astype(np.float32) for array in arrays]


def load_into(model: torch.nn.Sequential, arrays: list[np.ndarray]) -> None:
    arrays = iter(arrays)
    with torch.no_grad():
        for module in model:
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.from_numpy(next(arrays).T.copy()))
                module.bias.copy_(torch.from_numpy(next(arrays)))
            elif isinstance(module, torch.nn.BatchNorm1d):
                module.weight.copy_(torch.from_numpy(next(arrays)))
                module.bias.copy_(torch.from_numpy(next(arrays)))


def keras_order(model: torch.nn.Module) -> list[list]:
    arrays = []
    for module in model:
        if isinstance(module, torch.nn.Linear):
            arrays += [module.weight.detach().numpy().T, module.bias.detach().numpy()]
        elif isinstance(module, torch.nn.BatchNorm1d):
            arrays += [module.weight.detach().numpy(), module.bias.detach().numpy()]
    return [array.astype(np.float64).tolist() for array in arrays]


def swalr_rates(lr, swa_lr, anneal_epochs, anneal_strategy, steps) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = swa_utils.SWALR(
        optimizer,
        swa_lr=swa_lr,
        anneal_epochs=anneal_epochs,
        anneal_strategy=anneal_strategy,
    )
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def main() -> None:
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    sequence = [weight_set(rng) for _ in range(N_WEIGHT_SETS)]
    data = rng.normal(0.5, 1.5, (N_ROWS, SIZES[0])).astype(np.float32)

    model = build_model()
    averaged = swa_utils.AveragedModel(model)
    for arrays in sequence:
        load_into(model, arrays)
        averaged.update_parameters(model)
    average = keras_order(averaged.module)

    loader = [
        torch.from_numpy(data[i : i + BATCH_SIZE]) for i in range(0, N_ROWS, BATCH_SIZE)
    ]
    swa_utils.update_bn(loader, averaged)
    norms = [m for m in averaged.module if isinstance(m, torch.nn.BatchNorm1d)]
    statistics = [
        dict(
            running_mean=m.running_mean.double().tolist(),
            running_var=m.running_var.double().tolist(),
            momentum=m.momentum,
            num_batches_tracked=int(m.num_batches_tracked),
        )
        for m in norms
    ]
    biased = (BATCH_SIZE - 1) / BATCH_SIZE
    with torch.no_grad():
        for m in norms:
            m.running_var.mul_(biased)
        averaged.eval()
        outputs = averaged(torch.from_numpy(data)).double().tolist()

    fixture = dict(
        generator="scripts/generate_swa_fixture.py",
        torch_version=torch.__version__,
        seed=SEED,
        sizes=list(SIZES),
        epsilon=1e-5,
        batch_size=BATCH_SIZE,
        data=data.astype(np.float64).tolist(),
        weights=[[array.astype(np.float64).tolist() for array in s] for s in sequence],
        average=average,
        update_bn=dict(
            statistics=statistics,
            outputs_with_biased_variance=outputs,
        ),
        swalr=[dict(config, rates=swalr_rates(**config)) for config in SWALR_CONFIGS],
    )
    path = pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/swa_peers.json"
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
