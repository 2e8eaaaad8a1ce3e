"""The committed start network fine-tuned with an image loss through the frozen generator (issue 9):
loss = |E(x) - z|^2 + lam * |G(E(x)) - x|^2 on fresh pairs, then LM from its starts on the first N
calibration samples (true inputs known), against LM from the committed network's starts.

    python benchmarks/exploration/start_cycle.py MODEL STEPS BATCH LAM LR N [LM]

Each step runs the generator forward and backward once on BATCH images (CPU: ~1 s per step of 32
at 64x64). Prints the relative input distance, the start's image loss and LM's converged count.
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR, lm, losses
from ronan import starts
from ronan.generation import generate, quantize
from ronan.models.registry import load_model
from ronan.seeding import rng

torch.set_num_threads(1)
name, steps, batch, lam, lr, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
iters = int(sys.argv[7]) if len(sys.argv) > 7 else 160
model = load_model(name); model.requires_grad_(False)
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
x_eval = generate(model, n, 0, purpose="calibration").float()
z_eval = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
net, _ = starts.get_inverse(model, build=False)


def report(label):
    net.eval()
    with torch.no_grad():
        zz = net(x_eval)
        rel = ((zz - z_eval).norm(dim=1) / z_eval.norm(dim=1))
        start_loss = losses(gen, zz, x_eval)
    t0 = time.perf_counter()
    lm(gen, zz, x_eval, iters, 4)
    ll = losses(gen, zz, x_eval)
    ok = (ll < FLOOR)
    print(f"{label}: relative distance median {rel.median().item():.2f}, start image loss median "
          f"{start_loss.median().item():.3f}; LM {iters}: converged {ok.sum().item()}/{n} "
          f"{[i for i in range(n) if ok[i]]}, median loss {ll.median().item():.2e} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)


if steps == 0:
    report("committed network")
    raise SystemExit
# fine-tune a copy of the committed network (BatchNorm in train mode on fresh pairs)
net.requires_grad_(True).train()
opt = torch.optim.Adam(net.parameters(), lr=lr)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
g = rng(7, "start-cycle")
t0 = time.perf_counter()
for step in range(steps):
    z = model.sample_inputs(batch, g)
    with torch.no_grad():
        x = quantize(model.generate(z).float())
    zz = net(x)
    zl = (zz - z.reshape(len(z), -1)).pow(2).mean()
    il = (gen(zz) - x).pow(2).mean()
    loss = zl + lam * il
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
    if (step + 1) % max(steps // 10, 1) == 0:
        print(f"  step {step + 1}: input loss {zl.item():.3f}, image loss {il.item():.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
net.eval().requires_grad_(False)
report(f"fine-tuned {steps} steps, batch {batch}, lam {lam}, lr {lr}")
