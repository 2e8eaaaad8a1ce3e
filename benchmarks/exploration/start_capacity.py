"""Does a larger or longer-trained start network close the 64x64 convergence gap? (issue 9)

For each configuration: train the inverse network (``ronan.starts.train_inverse`` with that
``StartSettings``), print the learned starts' median relative distance to the true inputs of the
first N calibration samples, then invert those samples with the engine's PRESET using that network
as the learned start, and print how many reach 8x the 8-bit floor. Written for a GPU session
(training 20,000 steps of batch 256 takes hours on this 2-core CPU).

    python benchmarks/exploration/start_capacity.py MODEL DEVICE N PRESET "width=32,steps=2000,batch=64;width=64,steps=20000,batch=256"
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR
from ronan import starts
from ronan.generation import generate
from ronan.inversion import PRESETS, invert
from ronan.models.registry import load_model
from ronan.seeding import rng

name, device, n, preset, configs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
if device == "cpu":
    torch.set_num_threads(1)
torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # exact fp32 (ronan.precision)
model = load_model(name, device); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float().to(device)
z = model.sample_inputs(n, rng(0, "calibration")).flatten(1).to(device)
for config in configs.split(";"):
    o = {k: int(v) for k, v in (kv.split("=") for kv in config.split(","))}
    settings = starts.StartSettings(steps=o.get("steps", 2000), batch=o.get("batch", 64), width=o.get("width", 32))
    t0 = time.perf_counter()
    net = starts.train_inverse(model, settings)
    trained = time.perf_counter() - t0
    with torch.no_grad():
        rel = ((net(x).flatten(1) - z).norm(dim=1) / z.norm(dim=1)).median().item()
    starts.get_inverse = lambda model, settings=None, **kw: (net, None)  # the engine's learned start: this network
    t1 = time.perf_counter()
    res = invert(model, x, settings=PRESETS[preset], seed=0)
    conv = int((res.loss < FLOOR).sum())
    print(f"{name} start {config}: trained in {trained:.0f} s, relative distance median {rel:.2f}; "
          f"{preset}: converged {conv}/{n} ({time.perf_counter() - t1:.0f} s)", flush=True)
