import sys
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import lm, losses, FLOOR
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model
from ronan.seeding import rng
torch.set_num_threads(1)
name = sys.argv[1]
model = load_model(name); model.requires_grad_(False)
x = generate(model, 100, 0, purpose="calibration").float()
z = model.sample_inputs(100, rng(0, "calibration"))
gen = lambda p: model.generate(p).float()
st = torch.load(f"/tmp/r1-{name}.pt"); z1, l1 = st["z"], st["loss"]
with torch.no_grad(): z0 = starts.learned_inputs(model, x)
rel0 = (z0 - z).norm(dim=1) / z.norm(dim=1); rel1 = (z1 - z).norm(dim=1) / z.norm(dim=1)
fail = (l1 >= FLOOR)
print("check true z loss max", losses(gen, z, x).max().item())
print("z norm fail", z.norm(dim=1)[fail].tolist(), "median all", z.norm(dim=1).median().item())
print("learned rel fail", rel0[fail].tolist(), "median ok", rel0[~fail].median().item())
print("final rel fail", rel1[fail].tolist())
idx = fail.nonzero().flatten()
for sig in [0.05, 0.1, 0.2, 0.3]:
    g = torch.Generator().manual_seed(1)
    zz = z[idx].repeat(4, 1); zz = zz + sig * zz.norm(dim=1, keepdim=True) / 10 * torch.randn(zz.shape, generator=g)
    lm(gen, zz, x[idx].repeat(4, 1, 1, 1), 160, 4)
    ll = losses(gen, zz, x[idx].repeat(4, 1, 1, 1)).view(4, -1)
    print(f"true z + rel noise {sig}: converged per fail image (of 4):", (ll < FLOOR).sum(0).tolist(), flush=True)
