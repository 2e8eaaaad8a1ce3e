"""Encoder fixed-point correction of the learned start: z <- z + eta (E(x) - E(G(z)))."""
import sys, time, math
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from ronan import starts
from convergence_sweep import FLOOR
from ronan.generation import generate, quantize
from ronan.inversion import PRESETS, invert
from ronan.models.registry import load_model
from ronan.seeding import rng
name = sys.argv[1]; n = int(sys.argv[2]); iters = [int(a) for a in sys.argv[3].split(",")]; eta = float(sys.argv[4])
run_fast = len(sys.argv) > 5 and sys.argv[5] == "fast"
torch.set_num_threads(1)
model = load_model(name); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float()
z = model.sample_inputs(n, rng(0, "calibration"))
net, _ = starts.get_inverse(model, starts.StartSettings())
def E(img):
    with torch.no_grad():
        return net(img.float()).view(len(img), *model.input_shape)
ex = E(x)
def stats(zk):
    rel = ((zk - z).flatten(1).norm(dim=1) / z.flatten(1).norm(dim=1))
    with torch.no_grad():
        mse = (model.generate(zk).float() - x).pow(2).flatten(1).mean(1)
    return rel, mse
zk = ex.clone(); results = {}
for k in range(max(iters) + 1):
    if k in iters:
        rel, mse = stats(zk)
        print(f"iter {k}: rel median {rel.median():.3f} mean {rel.mean():.3f}, image mse median {mse.median():.2e}", flush=True)
        results[k] = zk.clone()
    with torch.no_grad():
        zk = zk + eta * (ex - E(model.generate(zk).float()))
if run_fast:
    for k in iters:
        start = results[k]
        starts.learned_inputs = lambda m, images, s=None, start=start: start[: len(images)] if len(images) == n else None
        t0 = time.perf_counter()
        res = invert(model, x, settings=PRESETS["fast"])
        print(f"fast from iter {k}: converged {int((res.loss < FLOOR).sum())} of {n}, median {res.loss.median():.2e} ({time.perf_counter()-t0:.0f} s)", flush=True)
