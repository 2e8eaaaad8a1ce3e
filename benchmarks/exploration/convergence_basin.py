"""Is it the start or the optimiser? LM (160 iterations, Jacobian afresh every 4) on the first N
calibration samples, from the learned start and from the true input plus Gaussian noise of
relative size SIG (one draw each); prints how many reach 8x the 8-bit floor.

    python benchmarks/exploration/convergence_basin.py MODEL N START[,START...]   (START: learned or a SIG)
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
name, n, which = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
model = load_model(name); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float()
z = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
print(f"{name}: true inputs reproduce the samples: max loss {losses(gen, z, x).max().item():.2e} (floor x8 {FLOOR:.2e})")
with torch.no_grad():
    learned = starts.learned_inputs(model, x).flatten(1)
print(f"learned start: relative distance median {((learned - z).norm(dim=1) / z.norm(dim=1)).median().item():.2f}")
for w in which:
    t0 = time.perf_counter()
    if w == "learned":
        zz = learned.clone()
    else:
        g = torch.Generator().manual_seed(1)
        zz = z + float(w) * z.norm(dim=1, keepdim=True) / z.shape[1] ** 0.5 * torch.randn(z.shape, generator=g)
    rel = ((zz - z).norm(dim=1) / z.norm(dim=1)).median().item()
    lm(gen, zz, x, 160, 4)
    ll = losses(gen, zz, x)
    print(f"start {w} (relative distance {rel:.2f}): converged {(ll < FLOOR).sum().item()}/{n}, "
          f"median loss {ll.median().item():.2e}, {time.perf_counter() - t0:.0f} s", flush=True)
