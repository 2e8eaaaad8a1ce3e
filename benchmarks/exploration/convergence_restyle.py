"""ReStyle-like residual start: R(x, G(z)) -> z* - z, applied iteratively after the learned start."""
import sys, time, math
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import lm, losses, FLOOR
from ronan import starts
from ronan.generation import generate, quantize
from ronan.models.registry import load_model
from ronan.seeding import rng
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
name, steps, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = load_model(name); model.requires_grad_(False)
dim = math.prod(model.input_shape)
E, _ = starts.get_inverse(model, starts.StartSettings()); E.eval().requires_grad_(False)
x_eval = generate(model, n, 0, purpose="calibration").float()
z_eval = model.sample_inputs(n, rng(0, "calibration"))
torch.manual_seed(5)
R = starts.InverseNet(2 * model.channels, model.image_size, dim)
torch.nn.init.zeros_(R.head.weight); torch.nn.init.zeros_(R.head.bias)
opt = torch.optim.Adam(R.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
g = rng(7, "restyle")
def G(z):
    return model.generate(z).float()
def step_once(x, z):
    return z + R(torch.cat([x, G(z)], 1))
def iterate(x, iters):
    with torch.no_grad():
        z = E(x).view(len(x), -1)
        out = [z]
        for _ in range(iters):
            z = step_once(x, z); out.append(z)
    return out
def rel(z):
    return ((z - z_eval).norm(dim=1) / z_eval.norm(dim=1)).median().item()
t0 = time.perf_counter()
for s in range(steps):
    R.train()
    zs = model.sample_inputs(64, g)
    with torch.no_grad():
        x = quantize(G(zs))
        z = E(x).view(64, -1)
        t = int(torch.randint(0, 3, (1,), generator=g))
        R.eval()
        for _ in range(t):
            z = step_once(x, z)
        R.train()
    loss = (step_once(x, z) - zs).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if (s + 1) % 250 == 0:
        R.eval()
        print(f"step {s+1} loss {loss.item():.3f}: rel", [round(rel(z), 3) for z in iterate(x_eval, 4)], f"({time.perf_counter()-t0:.0f} s)", flush=True)
R.eval()
torch.save(R.state_dict(), f"/tmp/restyle-{name}-{steps}.pt")
for iters in [0, 2, 4]:
    z = iterate(x_eval, iters)[-1].clone()
    t0 = time.perf_counter()
    lm(G, z, x_eval, 160, 4)
    l = losses(G, z, x_eval)
    print(f"LM160 from {iters} residual iterations: converged {int((l < FLOOR).sum())}/{n} ({time.perf_counter()-t0:.0f} s)", flush=True)
