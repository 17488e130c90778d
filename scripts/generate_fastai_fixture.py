"""Records fastai's `lr_find` suggestions into `tests/fixtures/lr_find_fastai.json`.

Run with a separate environment that has fastai (never kerasx's own):

    python3 -m venv /tmp/peers-fastai
    /tmp/peers-fastai/bin/pip install "torch==2.13.0+cpu" "torchvision==0.28.0" \
        "fastai==2.8.12"
    /tmp/peers-fastai/bin/python scripts/generate_fastai_fixture.py

For each curve the fixture holds the learning rates, the raw losses, fastai's
smoothed losses (its `AvgSmoothLoss`, beta 0.98), and the suggestions as
`Learner.lr_find` computes them: `valley`, `steep` and `minimum` applied to the
recorded points `[num_it // 10 : -5]`, truncated at the first NaN (the tail of
`lr_find`, copied below because it is not a separate function in fastai), plus
the same three rules on the whole finite curve ("untrimmed"). Synthetic curves
are smoothed in float64 with fastai's `AvgSmoothLoss.accumulate`; the real sweep
is `Learner.lr_find` itself on a tiny seeded regression problem, in float32. The
rules run on fastai's `tensor` (float32), exactly as in `lr_find`.

Each curve also holds fastai's `slide` (default `lr_diff=15`, `thresh=0.005`)
under "slide": "lr_find", as `lr_find` computes it (the trimmed points, float32;
for the real sweep, `lr_find`'s own answer); "float64", the same points as
float64 tensors; and "untrimmed_float64", the whole finite curve in float64.

Re-running keeps the recorded curves: where a regenerated value differs from the
fixture's by at most 1e-14 relative, the fixture's value stays. NumPy's float64
`power`, `exp` and `log10` are dispatched on the CPU's SIMD features, so the
synthetic rates and raw losses come out a few ulps apart on machines with and
without AVX-512 (the fixture was first recorded on one with it); fastai's
outputs are computed on the values written. Anything further apart stops the
script.
"""

from __future__ import annotations

import json
import math
import pathlib
import tempfile

import fastai
import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.schedule import minimum, slide, steep, valley
from fastai.data.core import DataLoaders
from fastai.learner import AvgSmoothLoss, Learner
from fastai.optimizer import SGD
from fastai.torch_core import tensor

OUTPUT = (
    pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/lr_find_fastai.json"
)
RULES = {"valley": valley, "steep": steep, "minimum": minimum}
# Agreement kept when re-running on another CPU (see the module docstring).
KEEP_RECORDED_RTOL = 1e-14


def fastai_smooth(losses, beta=0.98):
    """fastai's `AvgSmoothLoss` fed one loss per batch, in float64."""

    class Batch:
        loss = None

    metric, batch, smoothed = AvgSmoothLoss(beta), Batch(), []
    metric.reset()
    metric.val = torch.zeros((), dtype=torch.float64)
    for loss in losses:
        batch.loss = torch.tensor(loss, dtype=torch.float64)
        metric.accumulate(batch)
        smoothed.append(float(metric.value))
    return smoothed


def lr_find_points(rates, smoothed, num_it, to_tensor=tensor):
    """The points the rules see at the end of fastai's `Learner.lr_find`."""
    lrs = to_tensor(rates[num_it // 10 : -5])
    losses = to_tensor(smoothed[num_it // 10 : -5])
    nan_idxs = torch.nonzero(torch.isnan(losses.view(-1)))
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs, losses = lrs[:drop_idx], losses[:drop_idx]
    return lrs, losses


def lr_find_suggestions(rates, smoothed, num_it, rules=RULES):
    """The end of fastai's `Learner.lr_find` (fastai 2.8), on recorded points."""
    lrs, losses = lr_find_points(rates, smoothed, num_it)
    return {name: float(rule(lrs, losses, num_it)[0]) for name, rule in rules.items()}


def float64_tensor(values):
    return torch.tensor(values, dtype=torch.float64)


def slide_suggestions(curve):
    """fastai's `slide` on the curve's points: as `lr_find`, and in float64."""
    rates = curve["rates"]
    smoothed = [float(loss) for loss in curve["smoothed_losses"]]
    num_it = curve["num_it"]
    lr_find = lr_find_suggestions(rates, smoothed, num_it, {"slide": slide})
    lrs, losses = lr_find_points(rates, smoothed, num_it, float64_tensor)
    finite = [i for i, loss in enumerate(smoothed) if math.isfinite(loss)]
    whole_lrs = float64_tensor([rates[i] for i in finite])
    whole_losses = float64_tensor([smoothed[i] for i in finite])
    return {
        "lr_find": lr_find["slide"],
        "float64": float(slide(lrs, losses, num_it)[0]),
        "untrimmed_float64": float(slide(whole_lrs, whole_losses, len(rates))[0]),
    }


def untrimmed_suggestions(rates, smoothed):
    finite = [i for i, loss in enumerate(smoothed) if math.isfinite(loss)]
    lrs = tensor([rates[i] for i in finite])
    losses = tensor([smoothed[i] for i in finite])
    return {
        name: float(rule(lrs, losses, len(rates))[0]) for name, rule in RULES.items()
    }


def synthetic_curve(name, rates, raw, num_it):
    smoothed = fastai_smooth(raw)
    return {
        "name": name,
        "num_it": num_it,
        "beta": 0.98,
        "rates": list(map(float, rates)),
        "raw_losses": list(map(float, raw)),
        "smoothed_losses": smoothed,
        "suggestions": lr_find_suggestions(rates, smoothed, num_it),
        "untrimmed": untrimmed_suggestions(rates, smoothed),
    }


def synthetic_curves():
    rng = np.random.default_rng(19)
    num_it = 100
    rates = 1e-7 * (10.0 / 1e-7) ** (np.arange(num_it) / num_it)
    log_rate = np.log10(rates)
    # A flat start, a fall around 1e-3, a minimum near 1e-1, then a blow-up.
    base = 2.3 - 1.6 / (1.0 + np.exp(-2.5 * (log_rate + 3.0)))
    base = base + np.where(log_rate > -1.0, 3.0 * (log_rate + 1.0) ** 2, 0.0)
    noisy = base * np.exp(0.15 * rng.normal(size=num_it))
    nan_tail = base.copy()
    nan_tail[70:] = np.nan
    inf_then_nan = base.copy()
    inf_then_nan[60] = np.inf
    inf_then_nan[61:] = np.nan
    # Stopped early, as a diverging sweep is: 48 recorded points of 100 requested.
    short = base[:48] * np.exp(0.05 * rng.normal(size=48))
    return [
        synthetic_curve("noisy", rates, noisy, num_it),
        synthetic_curve("nan_tail", rates, nan_tail, num_it),
        synthetic_curve("inf_then_nan", rates, inf_then_nan, num_it),
        synthetic_curve("stopped_early", rates[:48], short, num_it),
    ]


class RawLosses(Callback):
    """Records the loss of every training batch (fastai keeps only the smoothed)."""

    order = 51  # after the loss, before `LRFinder` (60) can cancel the fit

    def before_fit(self):
        self.raw = []

    def after_batch(self):
        if self.training:
            self.raw.append(float(self.learn.loss.detach()))


def real_sweep():
    torch.manual_seed(19)
    generator = np.random.default_rng(19)
    x = generator.normal(size=(1024, 8)).astype("float32")
    y = (x @ generator.normal(size=(8, 1)) + 0.1).astype("float32")
    dataset = list(zip(torch.from_numpy(x), torch.from_numpy(y), strict=True))
    loaders = DataLoaders.from_dsets(
        dataset[:896], dataset[896:], bs=16, shuffle=False, device="cpu"
    )
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
    )
    raw = RawLosses()
    with tempfile.TemporaryDirectory() as path:
        learner = Learner(
            loaders,
            model,
            loss_func=torch.nn.functional.mse_loss,
            opt_func=SGD,
            path=path,
            cbs=[raw],
        )
        num_it = 100
        with learner.no_bar():
            found = learner.lr_find(
                start_lr=1e-6,
                end_lr=10.0,
                num_it=num_it,
                show_plot=False,
                suggest_funcs=(valley, steep, minimum, slide),
            )
        rates = [float(rate) for rate in learner.recorder.lrs]
        smoothed = [float(loss) for loss in learner.recorder.losses]
    # `lr_find`'s own answer and the copied tail agree on its recorded points.
    found = dict(
        zip(("valley", "steep", "minimum", "slide"), map(float, found), strict=True)
    )
    own_slide = found.pop("slide")
    suggestions = found
    assert suggestions == lr_find_suggestions(rates, smoothed, num_it)
    assert (
        own_slide
        == lr_find_suggestions(rates, smoothed, num_it, {"slide": slide})["slide"]
    )
    return {
        "name": "real_sweep",
        "num_it": num_it,
        "beta": 0.98,
        "rates": rates,
        "raw_losses": raw.raw[: len(rates)],
        "smoothed_losses": smoothed,
        "suggestions": suggestions,
        "untrimmed": untrimmed_suggestions(rates, smoothed),
    }


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return (
            "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        )
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_strict(item) for item in value]
    return value


def _close(new, old):
    if isinstance(new, float) and isinstance(old, float):
        return new == old or math.isclose(new, old, rel_tol=KEEP_RECORDED_RTOL)
    if isinstance(new, dict) and isinstance(old, dict):
        return new.keys() == old.keys() and all(_close(new[k], old[k]) for k in new)
    if isinstance(new, list) and isinstance(old, list):
        return len(new) == len(old) and all(map(_close, new, old))
    return new == old


def keep_recorded(curves, recorded):
    """`curves` with each value the recorded fixture already holds, if close."""
    recorded = {curve["name"]: curve for curve in recorded}
    kept = []
    for curve in curves:
        old = recorded.get(curve["name"], {})
        for key, value in curve.items():
            if key in old and not _close(_strict(value), old[key]):
                raise SystemExit(
                    f"{curve['name']}[{key!r}] differs from the recorded fixture by "
                    f"more than {KEEP_RECORDED_RTOL:g} relative"
                )
        kept.append({**curve, **{key: old[key] for key in curve if key in old}})
    return kept


def main():
    curves = [*synthetic_curves(), real_sweep()]
    if OUTPUT.exists():
        curves = keep_recorded(curves, json.loads(OUTPUT.read_text())["curves"])
    for curve in curves:
        curve["slide"] = slide_suggestions(curve)
    fixture = {
        "generator": "scripts/generate_fastai_fixture.py",
        "fastai": fastai.__version__,
        "torch": torch.__version__,
        "curves": curves,
    }
    # Strict JSON: non-finite losses are written as the strings "NaN" / "Infinity"
    # (read back with `float`).
    OUTPUT.write_text(json.dumps(_strict(fixture), indent=1, allow_nan=False) + "\n")
    for curve in fixture["curves"]:
        print(curve["name"], len(curve["rates"]), curve["suggestions"], curve["slide"])


if __name__ == "__main__":
    main()
