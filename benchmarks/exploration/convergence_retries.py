"""Engine preset on N samples (seed 0), then retries with seeds 1..R on the unconverged only.

    python benchmarks/exploration/convergence_retries.py MODEL N PRESET R [DEVICE]   (DEVICE: cpu default, or cuda)
"""
import sys, time, json
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR
from ronan.generation import generate
from ronan.inversion import PRESETS, invert
from ronan.models.registry import load_model
torch.set_num_threads(1)
name, n, preset, R = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
model = load_model(name, device); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float().to(device)
loss = torch.full((n,), float("inf")); tried = 0; log = []
t0 = time.perf_counter()
for seed in range(R + 1):
    idx = (loss >= FLOOR).nonzero().flatten()
    idx_dev = idx.to(device)
    if len(idx) == 0: break
    t1 = time.perf_counter()
    r = invert(model, x[idx_dev], settings=PRESETS[preset], seed=seed)
    loss[idx] = torch.minimum(loss[idx], r.loss.cpu()); tried += len(idx)
    conv = int((loss < FLOOR).sum())
    log.append({"seed": seed, "tried": len(idx), "converged": conv, "s": time.perf_counter() - t1})
    print(f"{name} {preset} seed {seed}: tried {len(idx)}, converged {conv}/{n}, images inverted so far {tried} ({time.perf_counter()-t1:.0f} s, total {time.perf_counter()-t0:.0f} s)", flush=True)
import os
json.dump({"losses": loss.tolist(), "log": log}, open(os.path.join(os.environ.get("OUT", "/tmp"), f"retries-{name}-{preset}-{n}.json"), "w"))
