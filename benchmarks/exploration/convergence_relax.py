"""Relaxed inversion: invert into the first layer's output (an over-parameterised space), then
project onto the linear layer's range and refine z with LM. Measures, on the first N calibration
samples, the relative distance of the projected start to the true input and how many converge.

    python benchmarks/exploration/convergence_relax.py MODEL N MODE STEPS LR [LAMBDAS]
    MODE: free (optimise h alone) | pen (optimise z and r, h = head(z) + r, penalty lam*|r|^2 annealed)
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR, lm, losses
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model
from ronan.seeding import rng

torch.set_num_threads(1)
name, n, mode, steps, lr = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
lams = [float(v) for v in sys.argv[6].split(",")] if len(sys.argv) > 6 else [0.0]
model = load_model(name); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float()
z = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
head, tail = model.net[0], model.net[1:]
img = lambda h: (tail(h) + 1.0) * 0.5
rel = lambda a, b: ((a - b).norm(dim=1) / b.norm(dim=1)).median().item()
with torch.no_grad():
    z0 = starts.learned_inputs(model, x).flatten(1)
    h_true = head(z)
print(f"{name}: learned start rel {rel(z0, z):.2f}, h rel {rel(head(z0), h_true):.2f}", flush=True)
t0 = time.perf_counter()
W, b = head.weight, head.bias  # h = z W^T + b
zz = z0.clone().requires_grad_(True)
r = torch.zeros_like(h_true, requires_grad=True)
params = [r] if mode == "free" else [zz, r]
for lam in lams:
    opt = torch.optim.Adam(params, lr=lr)
    for s in range(steps):
        h = head(zz) + r
        per = ((img(h) - x) ** 2).flatten(1).mean(1)
        loss = per.sum() + lam * (r ** 2).flatten(1).mean(1).sum()
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        h = head(zz) + r
        zp = torch.linalg.lstsq(W, (h - b).T).solution.T
        print(f"lam {lam:g}: image loss median {per.median().item():.2e}, h rel {rel(h, h_true):.2f}, |r| rel {rel(head(zz) + r, head(zz)):.2f}, "
              f"projected z rel {rel(zp, z):.2f}, its image loss median {losses(gen, zp, x).median().item():.2e}, {time.perf_counter() - t0:.0f} s", flush=True)
zz = zp.clone()
lm(gen, zz, x, 160, 4)
ll = losses(gen, zz, x)
print(f"after LM 160: converged {(ll < FLOOR).sum().item()}/{n}, median {ll.median().item():.2e}, rel {rel(zz, z):.2f}, {time.perf_counter() - t0:.0f} s", flush=True)
