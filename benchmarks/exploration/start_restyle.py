"""An iterative start network on top of the committed one (issue 9; after ReStyle, Alaluf et al.
2021): a refiner R(x, G(z_k), z_k) -> dz, trained on fresh pairs with the input loss
|z_k + dz - z|^2 at each of K refinement stages (z_0 = the committed start, z_{k+1} = z_k + dz,
no gradient through the generator), then LM from its best stage's starts on the first N calibration
samples (true inputs known).

    python benchmarks/exploration/start_restyle.py MODEL STEPS BATCH K WIDTH N [LM] [SAVE]

Prints the relative input distance and the start's image loss after each stage, then LM's
converged count from the committed start and from the refined one.
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from torch import nn
from convergence_sweep import lm_converged, losses
from ronan import starts
from ronan.generation import generate, quantize
from ronan.models.registry import load_model
from ronan.seeding import rng

torch.set_num_threads(1)
name, steps, batch, stages, width, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
iters = int(sys.argv[7]) if len(sys.argv) > 7 else 160
save = sys.argv[8] if len(sys.argv) > 8 else None
model = load_model(name); model.requires_grad_(False)
dim = model.input_shape.numel() if hasattr(model.input_shape, "numel") else int(torch.tensor(model.input_shape).prod())
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
x_eval = generate(model, n, 0, purpose="calibration").float()
z_eval = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
start, _ = starts.get_inverse(model, build=False)


class Refiner(nn.Module):
    """(x, x_k, z_k) -> dz: InverseNet's features on the 2C-channel pair, z_k joined before the head."""

    def __init__(self):
        super().__init__()
        base = starts.InverseNet(2 * model.channels, model.image_size, dim, width)
        self.features = base.features
        feat = base.head.in_features
        self.head = nn.Sequential(nn.Linear(feat + dim, 512), nn.LeakyReLU(0.2, True), nn.Linear(512, dim))

    def forward(self, x, xk, zk):
        f = self.features(torch.cat([x, xk], 1) * 2.0 - 1.0)
        return self.head(torch.cat([f, zk], 1))


torch.manual_seed(0)
ref = Refiner()


def run_stages(x, z0, count):
    out = [z0]
    z = z0
    for _ in range(count):
        with torch.no_grad():
            xk = gen(z)
            z = z + ref(x, xk, z)
        out.append(z)
    return out


def report(label, lm_from=None):
    ref.eval()
    with torch.no_grad():
        zs = run_stages(x_eval, start(x_eval), stages)
    rows = []
    for k, zz in enumerate(zs):
        rel = ((zz - z_eval).norm(dim=1) / z_eval.norm(dim=1)).median().item()
        rows.append((k, rel, losses(gen, zz, x_eval).median().item()))
    print(label + ": " + ", ".join(f"stage {k}: distance {r:.2f} image {l:.4f}" for k, r, l in rows), flush=True)
    if lm_from is None:
        return
    lm_converged(gen, zs[lm_from], x_eval, iters, f"stage {lm_from}")


opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
g = rng(11, "start-restyle")
t0 = time.perf_counter()
ref.train()
for step in range(steps):
    z = model.sample_inputs(batch, g).reshape(batch, -1)
    with torch.no_grad():
        x = quantize(gen(z))
        zk = start(x)
    total = 0.0
    for k in range(stages):
        with torch.no_grad():
            xk = gen(zk)
        dz = ref(x, xk, zk)
        loss = (zk + dz - z).pow(2).mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        total += loss.item()
        zk = (zk + dz).detach()
    sched.step()
    if (step + 1) % max(steps // 10, 1) == 0:
        print(f"  step {step + 1}: last-stage input loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if (step + 1) % max(steps // 2, 1) == 0:
            report(f"after {step + 1} steps")
            ref.train()
if save:
    torch.save(ref.state_dict(), save)
ref.eval()
report("final", lm_from=stages)
