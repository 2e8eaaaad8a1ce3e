"""A start network trained longer on a fixed pool of pairs (CPU-affordable: the generator runs once
per pair, not once per step), then LM from its starts (issue 9).

    python benchmarks/exploration/start_longer.py MODEL POOL STEPS WIDTH N
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR, lm, losses
from ronan.generation import generate, quantize
from ronan.models.registry import load_model
from ronan.seeding import rng
from ronan.starts import InverseNet

torch.set_num_threads(1)
name, pool, steps, width, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model = load_model(name); model.requires_grad_(False)
x_eval = generate(model, n, 0, purpose="calibration").float()
z_eval = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
t0 = time.perf_counter()
g = rng(1, "start-pool")
zs, xs = [], []
with torch.no_grad():
    for i in range(0, pool, 64):
        z = model.sample_inputs(min(64, pool - i), g)
        zs.append(z.flatten(1)); xs.append(quantize(model.generate(z).float()).half())
Z, X = torch.cat(zs), torch.cat(xs)
print(f"{name}: pool of {pool} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
torch.manual_seed(0)
net = InverseNet(model.channels, model.image_size, Z.shape[1], width)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
pick = torch.Generator().manual_seed(0)


def distance():
    net.eval()
    with torch.no_grad():
        d = ((net(x_eval) - z_eval).norm(dim=1) / z_eval.norm(dim=1)).median().item()
    net.train()
    return d


t0 = time.perf_counter()
for step in range(steps):
    idx = torch.randint(0, pool, (64,), generator=pick)
    loss = (net(X[idx].float()) - Z[idx]).pow(2).mean()
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
    if (step + 1) % max(steps // 8, 1) == 0:
        print(f"  step {step + 1}: train loss {loss.item():.3f}, eval relative distance {distance():.2f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
net.eval()
with torch.no_grad():
    zz = net(x_eval)
rel = ((zz - z_eval).norm(dim=1) / z_eval.norm(dim=1))
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
t0 = time.perf_counter()
lm(gen, zz, x_eval, 160, 4)
ll = losses(gen, zz, x_eval)
print(f"LM 160 from this start (relative distance median {rel.median().item():.2f}): converged "
      f"{(ll < FLOOR).sum().item()}/{n}, median loss {ll.median().item():.2e} ({time.perf_counter() - t0:.0f} s)", flush=True)
