"""Continuation on the target: follow the least-squares input while the target moves from the start's
own image G(s) to the image x in K stages (x_t = (1-t) G(s) + t x), I LM iterations per stage, then
LM free (FINAL iterations). Measured on the first N calibration samples (true inputs known).

    python benchmarks/exploration/convergence_homotopy.py MODEL FIRST:LAST K I FINAL

(Session 33: on resgan64-clipart 0:20 8 15 160 the input drifts away from the true one as the
target moves, relative distance 0.87 -> 1.09; 5 of 20 converge against LM alone's 8.)
"""
import sys, time
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR, lm, losses
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model
from ronan.seeding import rng
torch.set_num_threads(1)
name, rg, K, I, FINAL = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
a, b = map(int, rg.split(":"))
model = load_model(name); model.requires_grad_(False)
x = generate(model, b, 0, purpose="calibration").float()[a:]
z = model.sample_inputs(b, rng(0, "calibration")).flatten(1)[a:]
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
with torch.no_grad():
    s = starts.learned_inputs(model, x).flatten(1)
    x0 = gen(s)
t0 = time.perf_counter()
zz = s.clone()
for k in range(1, K + 1):
    t = k / K
    lm(gen, zz, (1 - t) * x0 + t * x, I, 4)
    rel = ((zz - z).norm(dim=1) / z.norm(dim=1)).median().item()
    print(f"stage {k}/{K} t={t:.2f}: loss to x median {losses(gen, zz, x).median().item():.2e}, rel {rel:.2f}", flush=True)
lm(gen, zz, x, FINAL, 4)
ll = losses(gen, zz, x)
print(f"{name} {a}:{b} K={K} I={I} final={FINAL}: converged {(ll < FLOOR).sum().item()}/{b-a} "
      f"{[i + a for i in range(b - a) if ll[i] < FLOOR]} median {ll.median().item():.2e} {time.perf_counter() - t0:.0f} s", flush=True)
