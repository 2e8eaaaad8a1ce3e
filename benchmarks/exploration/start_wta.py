"""A start network with K hypotheses (issue 9; multiple-choice learning, Guzman-Rivera et al. 2012):
K heads on the committed network's features, trained on fresh pairs with a relaxed winner-takes-all
input loss (the best head's |E_k(x) - z|^2 weighted 1 - eps, the others eps / (K - 1)), starting from
copies of the committed head. Then, on the first N calibration samples (true inputs known): the
best head's distance (oracle), the distance of the head whose image is closest to x (the pick),
and LM from the picked heads.

    python benchmarks/exploration/start_wta.py MODEL STEPS BATCH K N [LM]

Prints the relative input distances and LM's converged count.
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import copy

import torch
from torch import nn
from convergence_sweep import lm_converged, losses
from ronan import starts
from ronan.generation import generate, quantize
from ronan.models.registry import load_model
from ronan.seeding import rng

torch.set_num_threads(1)
name, steps, batch, heads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
iters = int(sys.argv[6]) if len(sys.argv) > 6 else 160
EPS = 0.05
model = load_model(name); model.requires_grad_(False)
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
x_eval = generate(model, n, 0, purpose="calibration").float()
z_eval = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
base, _ = starts.get_inverse(model, build=False)
base = copy.deepcopy(base)
dim = base.head.out_features
torch.manual_seed(0)
head_w = base.head.weight.detach().repeat(heads, 1) + 0.01 * torch.randn(heads * dim, base.head.in_features)
head_b = base.head.bias.detach().repeat(heads)
head = nn.Linear(base.head.in_features, heads * dim)
with torch.no_grad():
    head.weight.copy_(head_w); head.bias.copy_(head_b)
features = base.features


def hyp(x):
    return head(features(x * 2.0 - 1.0)).view(len(x), heads, dim)


def pick(x, zs):
    """[B, K, D] -> the head whose image is closest to x (one generator pass per head)."""
    ll = torch.stack([losses(gen, zs[:, k], x) for k in range(heads)], 1)
    return zs[torch.arange(len(x)), ll.argmin(1)], ll.argmin(1)


def report(label, run_lm=False):
    features.eval()
    with torch.no_grad():
        zs = hyp(x_eval)
        rel = (zs - z_eval[:, None]).norm(dim=2) / z_eval.norm(dim=1)[:, None]
        zp, which = pick(x_eval, zs)
        relp = (zp - z_eval).norm(dim=1) / z_eval.norm(dim=1)
    print(f"{label}: oracle distance median {rel.min(1).values.median().item():.2f}, picked {relp.median().item():.2f}, "
          f"head 0 {rel[:, 0].median().item():.2f}, heads picked {sorted(set(which.tolist()))}", flush=True)
    if not run_lm:
        return
    lm_converged(gen, zp, x_eval, iters, "the picked heads")


report("start (copies of the committed head)")
params = list(features.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, lr=3e-4)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
g = rng(13, "start-wta")
t0 = time.perf_counter()
features.train()
for step in range(steps):
    z = model.sample_inputs(batch, g).reshape(batch, -1)
    with torch.no_grad():
        x = quantize(gen(z))
    err = (hyp(x) - z[:, None]).pow(2).mean(2)  # [B, K]
    w = torch.full_like(err, EPS / (heads - 1))
    w[torch.arange(batch), err.argmin(1)] = 1 - EPS
    loss = (w * err).sum(1).mean()
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
    if (step + 1) % max(steps // 10, 1) == 0:
        wins = torch.bincount(err.argmin(1), minlength=heads).tolist()
        print(f"  step {step + 1}: loss {loss.item():.3f}, best-head loss {err.min(1).values.mean().item():.3f}, wins {wins} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if (step + 1) % max(steps // 2, 1) == 0:
            report(f"after {step + 1} steps")
            features.train()
features.eval()
report("final", run_lm=True)
