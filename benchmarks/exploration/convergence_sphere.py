"""Does keeping the input on the typical shell widen the basin? LM on the first N calibration
samples from the learned start, with the input parameterised on the sphere of radius sqrt(d)
(z = sqrt(d) u / |u|, where a d-dimensional standard normal input lies) for K1 iterations, then
free LM for K2 iterations from there (the true input is near, not on, the sphere); prints how many
reach 8x the 8-bit floor, against free LM from the same start for K1 + K2 iterations.

    python benchmarks/exploration/convergence_sphere.py MODEL N K1 K2 [free|sphere] [I,J,...]

With indices I,J,...: only those of the first N calibration samples.
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
name, n, k1, k2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = load_model(name); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float()
z = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
if len(sys.argv) > 6:
    idx = [int(v) for v in sys.argv[6].split(",")]
    x, z, n = x[idx], z[idx], len(idx)
d = z.shape[1]
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
sphere = lambda u: d ** 0.5 * u / u.norm(dim=1, keepdim=True)
rel = lambda p: ((p - z).norm(dim=1) / z.norm(dim=1)).median().item()
with torch.no_grad():
    learned = starts.learned_inputs(model, x).flatten(1)
print(f"{name}: true input norms median {z.norm(dim=1).median().item():.2f} (sqrt(d) {d ** 0.5:.2f}); "
      f"learned start norms median {learned.norm(dim=1).median().item():.2f}, relative distance {rel(learned):.2f}, "
      f"on the sphere {rel(sphere(learned)):.2f}", flush=True)
t0 = time.perf_counter()
if len(sys.argv) > 5 and sys.argv[5] == "free":
    zz = learned.clone()
    lm(gen, zz, x, k1 + k2, 4)
    label = f"free LM {k1 + k2}"
else:
    u = learned.clone()
    lm(lambda p: gen(sphere(p)), u, x, k1, 4)
    ll = losses(gen, sphere(u), x)
    print(f"after {k1} LM on the sphere: relative distance {rel(sphere(u)):.2f}, converged {(ll < FLOOR).sum().item()}/{n}, "
          f"median loss {ll.median().item():.2e}", flush=True)
    zz = sphere(u).clone()
    lm(gen, zz, x, k2, 4)
    label = f"sphere LM {k1} + free LM {k2}"
ll = losses(gen, zz, x)
print(f"{label}: relative distance {rel(zz):.2f}, converged {(ll < FLOOR).sum().item()}/{n}, "
      f"median loss {ll.median().item():.2e}, {time.perf_counter() - t0:.0f} s", flush=True)
print("per image converged:", "".join("1" if v < FLOOR else "0" for v in ll.tolist()), flush=True)
