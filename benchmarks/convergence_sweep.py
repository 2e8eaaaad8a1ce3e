"""Exploration of inversion strategies on belonging samples (issue 9): coarse-to-fine LM, longer LM,
candidates around the learned start. Written for a GPU session; not the engine (ronan/inversion.py),
but the same building blocks (learned start, torch Adam, ronan.refine).

    python benchmarks/convergence_sweep.py DEVICE N MODELS STRATEGIES JSON_OUT
    python benchmarks/convergence_sweep.py cuda 100 upgan64-clipart \
        "adam=100,lm=160,every=4;adam=100,cand=8,sig=0.3,lm=160" out.json

A strategy is comma-separated ``key=value``: ``adam`` Adam steps (lr 0.2) from the learned start
(default 100); ``cand``/``sig``: that many starts, the learned one and the others drawn around it
with standard deviation ``sig`` (torch.Generator seed 0), the best of each image kept after the
Adam steps (``pick=lm``: after 16 more LM iterations on every candidate); ``mr``: coarse-to-fine
LM first on the images average-pooled to these sizes (e.g. ``8-16-32``, ``mri`` iterations each);
``sph``: that many LM iterations with the input kept on the sphere of radius sqrt(d), where a
standard normal input lies (z = sqrt(d) u / |u|), before the free ones; ``lm`` LM iterations at
full size with a fresh Jacobian every ``every``. Converged: loss below 8x the 8-bit floor. Prints
converged / N, median loss and seconds per strategy.
"""
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ronan import starts  # noqa: E402
from ronan.generation import generate  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402
from ronan.refine import refine  # noqa: E402

from ronan.distances import REACHED_FLOOR as FLOOR  # noqa: E402  (converged: below 8x the 8-bit floor)


def losses(gen, z, targets):
    with torch.no_grad():
        return (gen(z) - targets).pow(2).flatten(1).mean(1)


def adam(gen, z, targets, steps, lr=0.2):
    """``steps`` Adam steps on every row of ``z`` against its row of ``targets``; returns the last inputs."""
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (gen(z) - targets).pow(2).flatten(1).mean(1).sum().backward()
        opt.step()
    return z.detach()


def lm(fn, z, targets, iterations, every):
    """Levenberg-Marquardt (ronan.refine) in place on ``z``."""
    rows = 64 if z.is_cuda else 16
    for _ in refine(fn, z, targets, iterations=iterations, jacobian_every=every, rows_per_jacobian=rows):
        pass


def lm_converged(gen, z, targets, iterations, label: str) -> int:
    """LM (``iterations``, Jacobian every 4) from a copy of ``z``; prints how many rows end below the
    floor (which, median loss, seconds) after ``label``; returns the count."""
    import time

    z, t0 = z.clone(), time.perf_counter()
    lm(gen, z, targets, iterations, 4)
    ll = losses(gen, z, targets)
    ok = ll < FLOOR
    print(f"  LM {iterations} from {label}: converged {int(ok.sum())}/{len(z)} {ok.nonzero().flatten().tolist()}, "
          f"median loss {ll.median().item():.2e} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return int(ok.sum())


def run(gen, z0, x, o: dict) -> torch.Tensor:
    """One strategy (``o``: its key=value options) from the learned starts ``z0``; returns the final losses."""
    n, steps, every = len(x), int(o.get("adam", 100)), int(o.get("every", 4))
    k = int(o.get("cand", 1))
    if k > 1:  # candidates around the learned start, the best kept after Adam (+ 16 LM on each with pick=lm)
        g = torch.Generator(device=z0.device).manual_seed(0)
        zc = z0.repeat(k, 1) + float(o.get("sig", 0.5)) * torch.randn(k * n, z0.shape[1], generator=g, device=z0.device)
        zc[:n] = z0
        xc = x.repeat(k, 1, 1, 1)
        zc = adam(gen, zc, xc, steps)
        if o.get("pick") == "lm":
            lm(gen, zc, xc, 16, 4)
        best = losses(gen, zc, xc).view(k, n).argmin(0)
        z = zc.view(k, n, -1)[best, torch.arange(n, device=z0.device)].clone()
    else:
        z = adam(gen, z0, x, steps) if steps else z0.clone()
    for size in [int(v) for v in o.get("mr", "").split("-") if v]:  # coarse to fine
        f = x.shape[-1] // size
        lm(lambda p, f=f: F.avg_pool2d(gen(p), f), z, F.avg_pool2d(x, f), int(o.get("mri", 12)), every)
    if int(o.get("sph", 0)):  # LM with the input on the sphere of radius sqrt(d) (the typical shell), then free
        r = z[0].numel() ** 0.5

        def shell(u):
            return r * u / u.flatten(1).norm(dim=1).view(-1, *[1] * (u.dim() - 1))

        lm(lambda p: gen(shell(p)), z, x, int(o["sph"]), every)
        z = shell(z)
    lm(gen, z, x, int(o.get("lm", 32)), every)
    return losses(gen, z, x).cpu()


def main() -> None:
    device, n, models, strategies, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 (ronan.precision)
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for name in models.split(","):
        model = load_model(name, device)
        x = generate(model, n, 0, purpose="calibration").float().to(device)
        with torch.no_grad():
            z0 = starts.learned_inputs(model, x).clone()

        def gen(p, model=model):
            return model.generate(p).float()

        for s in strategies.split(";"):
            t0 = time.perf_counter()
            loss = run(gen, z0, x, dict(kv.split("=") for kv in s.split(",")))
            r = {"model": name, "strat": s, "converged": int((loss < FLOOR).sum()), "n": n,
                 "median": float(loss.median()), "s": round(time.perf_counter() - t0, 1), "losses": loss.tolist()}
            rows.append(r)
            print(name, s, r["converged"], "/", n, f"{r['median']:.1e}", r["s"], "s", flush=True)
    Path(out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
