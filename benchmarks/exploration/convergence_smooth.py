"""Continuation on the generator: its ReLUs replaced by (x + sqrt(x^2 + e^2) - e) / 2, LM on each
e of a falling schedule (the last is the true ReLU), from the learned start; first N calibration
samples; prints how many reach 8x the 8-bit floor.

    python benchmarks/exploration/convergence_smooth.py MODEL N EPS[,EPS...] LM_PER_STAGE [FINAL_LM]
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from torch import nn
from convergence_sweep import FLOOR, lm, losses
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model
from ronan.seeding import rng


class Smooth(nn.Module):
    eps = 0.0

    def forward(self, v):
        e = Smooth.eps
        return torch.relu(v) if e == 0 else (v + torch.sqrt(v * v + e * e) - e) * 0.5


def swap(m: nn.Module) -> None:
    for k, c in m.named_children():
        if isinstance(c, nn.ReLU):
            setattr(m, k, Smooth())
        else:
            swap(c)


torch.set_num_threads(1)
name, n, eps, per = sys.argv[1], int(sys.argv[2]), [float(v) for v in sys.argv[3].split(",")], int(sys.argv[4])
final = int(sys.argv[5]) if len(sys.argv) > 5 else 160
model = load_model(name); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float()
z = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
with torch.no_grad():
    zz = starts.learned_inputs(model, x).flatten(1).clone()
swap(model)
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
rel = lambda a: ((a - z).norm(dim=1) / z.norm(dim=1)).median().item()
t0 = time.perf_counter()
for e in eps:
    Smooth.eps = e
    lm(gen, zz, x, per, 4)
    Smooth.eps = 0.0
    ll = losses(gen, zz, x)
    print(f"eps {e:g}: rel {rel(zz):.2f}, true-model loss median {ll.median().item():.2e}, converged {(ll < FLOOR).sum().item()}, {time.perf_counter() - t0:.0f} s", flush=True)
Smooth.eps = 0.0
lm(gen, zz, x, final, 4)
ll = losses(gen, zz, x)
print(f"final LM {final}: converged {(ll < FLOOR).sum().item()}/{n}, median {ll.median().item():.2e}, rel {rel(zz):.2f}, {time.perf_counter() - t0:.0f} s", flush=True)
