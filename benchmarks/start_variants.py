"""Do better learned starts make the late models' inversions converge? (issue 9; exploration, CPU or GPU)

    python benchmarks/start_variants.py --model upgan64-clipart --variant z --steps 8000
    python benchmarks/start_variants.py --model upgan64-clipart --variant image --steps 2000
    python benchmarks/start_variants.py --model upgan64-clipart --variant heads --heads 8 --steps 2000

Trains an inverse network as ``ronan.starts.train_inverse`` does (same network, Adam 1e-3 with cosine
decay, 64 fresh pairs a step, seed 0), with one change per variant:

* ``z``: the committed recipe (MSE to the true input), for ``--steps`` steps (the committed: 2000);
* ``image``: MSE of the *reconstruction* ``M(E(x))`` to ``x``, plus ``--z-weight`` (0.01) x the
  input MSE, from scratch — a start chosen for how well it reconstructs;
* ``heads``: ``--heads`` K outputs per image trained by relaxed winner-takes-all (0.95 of the loss
  on the closest head, 0.05 shared by the others: multiple-choice learning), so that the starts of
  an image could cover several basins.

Every 500 steps it prints, on the first ``--n`` (40) calibration samples (whose true inputs are
known), the median relative distance of the start to the true input and the median image MSE of
the start. At the end it inverts those samples with ``fast`` from the new start (``z``, ``image``),
or with the ``thorough`` schedule taking the K heads as its candidates (``heads``, K must be 8),
and prints how many converge (loss < 8x the 8-bit floor). Nothing is cached; the engine is not changed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ronan.inversion as inversion  # noqa: E402
from ronan import starts  # noqa: E402
from ronan.generation import generate, quantize  # noqa: E402
from ronan.inversion import PRESETS, invert  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402
from ronan.seeding import rng  # noqa: E402

from ronan.distances import REACHED_FLOOR as FLOOR  # noqa: E402


def loss_of(variant: str, model, net, x, z, k: int, z_weight: float) -> torch.Tensor:
    """The training loss of one batch (``x`` the images, ``z`` their true inputs)."""
    out = net(x).view(len(x), k, -1)
    if variant == "image":
        rec = model.generate(out[:, 0].view(len(x), *model.input_shape)).float()
        return (rec - x).pow(2).mean() + z_weight * (out[:, 0] - z.flatten(1)).pow(2).mean()
    err = (out - z.reshape(len(z), 1, -1)).pow(2).mean(2)                      # [B, K]
    if k == 1:
        return err.mean()
    w = torch.full_like(err, 0.05 / (k - 1)).scatter_(1, err.argmin(1, keepdim=True), 0.95)
    return (w * err).sum(1).mean()


def report(model, net, x, z, k: int) -> str:
    """Median relative distance of the (closest) start to the true input, and the start's image MSE."""
    with torch.no_grad():
        out = net(x).view(len(x), k, -1)
        rel = ((out - z.flatten(1)[:, None]).norm(dim=2) / z.flatten(1).norm(dim=1)[:, None]).min(1).values
        rec = model.generate(out[:, 0].reshape(len(x), *model.input_shape)).float()
        mse = (rec - x).pow(2).flatten(1).mean(1)
    return f"relative distance {rel.median():.3f}, start image MSE {mse.median():.2e}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="upgan64-clipart")
    p.add_argument("--variant", choices=["z", "image", "heads"], default="z")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--z-weight", type=float, default=0.01)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    model.requires_grad_(False)
    k = args.heads if args.variant == "heads" else 1
    dim = math.prod(model.input_shape)
    x_eval = generate(model, args.n, 0, purpose="calibration").float()
    z_eval = model.sample_inputs(args.n, rng(0, "calibration"))   # the inputs generate() drew
    g = rng(0, "learned-start")
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    net = starts.InverseNet(model.channels, model.image_size, k * dim)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    t0 = time.perf_counter()
    for step in range(args.steps):
        net.train()
        z = model.sample_inputs(64, g)
        with torch.no_grad():
            x = quantize(model.generate(z).float())
        loss = loss_of(args.variant, model, net, x, z, k, args.z_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 500 == 0:
            net.eval()
            print(f"step {step + 1}: {report(model, net, x_eval, z_eval, k)} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    net.eval().requires_grad_(False)

    def learned(images: torch.Tensor) -> torch.Tensor:
        return net(images.float()).view(len(images) * k, *model.input_shape)

    if args.variant == "heads":  # the heads are the candidates of the thorough schedule
        settings = PRESETS["thorough"]
        if settings.candidates != k:
            raise SystemExit(f"--heads must be {settings.candidates} (thorough's candidates)")
        inversion._starting_points = lambda generator, images, s, seed, rows: learned(images)
    else:
        settings = PRESETS["fast"]
        starts.learned_inputs = lambda m, images, s=None: learned(images)
    t0 = time.perf_counter()
    res = invert(model, x_eval, settings=settings)
    how = "thorough's schedule, the heads as its candidates" if args.variant == "heads" else "fast"
    print(f"{args.model}, variant {args.variant}, {how}: converged "
          f"{int((res.loss < FLOOR).sum())} of {args.n}, settled {int(res.settled.sum())}, median loss "
          f"{res.loss.median():.2e} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
