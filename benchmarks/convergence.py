"""Do belonging inversions converge? Per inversion setting, on N belonging 8-bit samples of a model.

    python benchmarks/convergence.py --model dcgan64-clipart --n 100 --configs paper fast fast-adam cand8
    python benchmarks/convergence.py --model dcgan64-clipart --n 100 --json-out out.json
    python benchmarks/convergence.py --model resgan64-clipart --first 20 --n 40 --configs two-path   # samples 20-59

The samples are the model's calibration samples (seed 0 of the "calibration" stream, quantized to
8 bits), i.e. exactly the belonging samples of Algorithm 1. A sample *converged* when its best
loss is below ``--floor-factor`` (default 8) times the 8-bit floor (the MSE of rounding to 8
bits, ~1.3e-6): a converged inversion has found the image's input up to rounding. Printed per
setting: converged count, median and maximum loss, mean row-steps per image (the cost: every
optimised row of every step, candidates included; the paper's preset costs 1500) and seconds
for the batch (1 torch thread unless --threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ronan.distances import MSE_8BIT_FLOOR  # noqa: E402
from ronan.generation import generate  # noqa: E402
from ronan.inversion import PRESETS, InversionSettings, invert  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

CONFIGS: dict[str, InversionSettings] = {
    "paper": InversionSettings(steps=1500, lr=0.1, restarts=1, plateau_steps=0),
    "paper-lr0.2": InversionSettings(steps=1500, lr=0.2, restarts=1, plateau_steps=0),
    "fast": PRESETS["fast"],            # the default preset (= ls-100-lm32-b4)
    "fast-lm16": PRESETS["fast-lm16"],  # the default before (= ls-300-lm16)
    "fast-adam": PRESETS["fast-adam"],  # the default before the 64x64 tier
    "thorough": PRESETS["thorough"],    # candidates around the learned start, 160 LM (issue 9)
    "two-path": PRESETS["two-path"],    # LM alone, and a second path on the typical shell where it failed
    "fast-lm48": replace(PRESETS["fast-lm16"], refine_steps=48),
    "fast-r4": replace(PRESETS["fast-lm16"], restarts=4),
    # fewer Adam steps, Levenberg-Marquardt with Broyden updates between fresh Jacobians (issue 15)
    "ls-100-lm32-b4": replace(PRESETS["fast"], steps=100, refine_steps=32, refine_jacobian_every=4),
    "ls-50-lm32-b4": replace(PRESETS["fast"], steps=50, refine_steps=32, refine_jacobian_every=4),
    "ls-300-adam": replace(PRESETS["fast-lm16"], refine_steps=0),
    "ls-100-lm16": replace(PRESETS["fast-lm16"], steps=100),
    "ls-50-lm16": replace(PRESETS["fast-lm16"], steps=50),
    "ls-20-lm16": replace(PRESETS["fast-lm16"], steps=20),
    "ls-100-lm16-b4": replace(PRESETS["fast-lm16"], steps=100, refine_jacobian_every=4),
    "ls-100-lm16-b8": replace(PRESETS["fast-lm16"], steps=100, refine_jacobian_every=8),
    "ls-100-lm32-b8": replace(PRESETS["fast"], refine_jacobian_every=8),
    "fast-adam-r4": InversionSettings(restarts=4),
    "fast-lr0.1": InversionSettings(lr=0.1),
    "fast-lr0.05": InversionSettings(lr=0.05),
    "cand4": InversionSettings(candidates=4, warmup_steps=50),
    "cand8": InversionSettings(candidates=8, warmup_steps=50),
    "cand16": InversionSettings(candidates=16, warmup_steps=30),
    "cand8-w100": InversionSettings(candidates=8, warmup_steps=100),
    "cand8-r2": InversionSettings(candidates=8, warmup_steps=50, restarts=2),
    "cand16-r2": InversionSettings(candidates=16, warmup_steps=50, restarts=2),
    "cand32-w20-r2": InversionSettings(candidates=32, warmup_steps=20, restarts=2),
    "fast-lm8": InversionSettings(refine_steps=8),
    "stop-lm8": InversionSettings(plateau_lr_drops=0, refine_steps=8),
    "cand8-stop-lm8": InversionSettings(candidates=8, warmup_steps=50, plateau_lr_drops=0, refine_steps=8),
    "ls-stop-lm8": InversionSettings(learned_start=True, plateau_lr_drops=0, refine_steps=8),
    "ls-cand8-stop-lm8": InversionSettings(learned_start=True, candidates=8, warmup_steps=50, plateau_lr_drops=0,
                                           refine_steps=8),
    "ls-w50-stop-lm8": InversionSettings(learned_start=True, plateau_steps=50, plateau_lr_drops=0, refine_steps=8),
    "ls-300-lm10": InversionSettings(learned_start=True, steps=300, plateau_lr_drops=0, refine_steps=10),
    "ls-200-lm12": InversionSettings(learned_start=True, steps=200, plateau_lr_drops=0, refine_steps=12),
    "ls-lr0.1-300-lm10": InversionSettings(learned_start=True, lr=0.1, steps=300, plateau_lr_drops=0,
                                           refine_steps=10),
    "ls-300-lm16": InversionSettings(learned_start=True, steps=300, plateau_lr_drops=0, refine_steps=16),
    "ls-r2-300-lm16": InversionSettings(learned_start=True, restarts=2, steps=300, plateau_lr_drops=0,
                                        refine_steps=16),
    "ls-cand4-300-lm16": InversionSettings(learned_start=True, candidates=4, warmup_steps=50, steps=300,
                                           plateau_lr_drops=0, refine_steps=16),
    "ls": InversionSettings(learned_start=True),
    "ls-r2": InversionSettings(learned_start=True, restarts=2),
    "ls-cand8": InversionSettings(learned_start=True, candidates=8, warmup_steps=50),
    "ls-cand4-w30": InversionSettings(learned_start=True, candidates=4, warmup_steps=30),
    # LM alone from the learned start (one Adam step), as long as thorough's LM and more (session 29)
    "ls-1-lm280": replace(PRESETS["thorough"], steps=1, candidates=1, warmup_steps=0, refine_steps=280),
}


def floor_mse() -> float:
    """MSE of rounding a uniform [0, 1] signal to 8 bits: (1/255)^2 / 12."""
    return MSE_8BIT_FLOOR


def run(model, x: torch.Tensor, name: str, settings: InversionSettings, floor: float, chunk: int) -> dict:
    t0 = time.perf_counter()
    losses, steps, row_steps, settled = [], [], 0, []
    for i in range(0, len(x), chunk):
        res = invert(model, x[i:i + chunk], settings=settings)
        losses.append(res.loss)
        steps.append(res.image_steps)
        settled.append(res.settled)
        row_steps += res.extra["row_steps"]
    loss, steps, settled = torch.cat(losses), torch.cat(steps), torch.cat(settled)
    return {"config": name, "settings": settings.to_dict(generator=model), "n": len(x),
            "converged": int((loss < floor).sum()), "median": float(loss.median()), "max": float(loss.max()),
            "row_steps_per_image": row_steps / len(x), "mean_steps": float(steps.float().mean()),
            "settled": int(settled.sum()), "seconds": round(time.perf_counter() - t0, 1),
            "losses": loss.tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dcgan64-clipart")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--first", type=int, default=0, help="skip this many calibration samples (default 0): "
                   "samples FIRST .. FIRST+N-1, so a long run can be split over processes")
    p.add_argument("--configs", nargs="+", default=["paper", "fast", "fast-adam", "cand8"], choices=list(CONFIGS))
    p.add_argument("--floor-factor", type=float, default=8.0)
    p.add_argument("--chunk", type=int, default=100, help="images per batch (default 100)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device)
    x = generate(model, args.first + args.n, 0, purpose="calibration")[args.first:]
    floor = args.floor_factor * floor_mse()
    print(f"{args.model}: {args.n} belonging 8-bit samples (from sample {args.first}); converged = loss < {floor:.2e} "
          f"({args.floor_factor:g} x the 8-bit floor {floor_mse():.2e})", flush=True)
    print(f"| setting | converged (of {args.n}) | median loss | max loss | row-steps per image | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for name in args.configs:
        r = run(model, x, name, CONFIGS[name], floor, args.chunk)
        rows.append(r)
        print(f"| {name}: {CONFIGS[name].describe()} | {r['converged']} | {r['median']:.2e} | {r['max']:.2e} | "
              f"{r['row_steps_per_image']:.0f} | {r['seconds']} |", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"model": args.model, "floor": floor, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
