"""Larger, longer-trained start networks on fresh pairs, sized to a wall-clock budget (issue 9, GPU).

Trains the start network with ``ronan.starts.train_inverse`` (fresh pairs every step) with the
given width and batch, for as many steps as BUDGET seconds allow (timed on a 25-step training,
rounded down to hundreds, at most 40,000), prints the held-out relative distance (the first N
calibration samples; session 27's figures at each fifth of the training came from this script's
first version, a copy of the training loop, commit a424157), then inverts those samples with ``fast`` and ``thorough`` using this network as the learned start
and prints how many reach 8x the 8-bit floor. Saves the network and its record under OUTDIR.

    python benchmarks/exploration/start_gpu.py MODEL DEVICE WIDTH BATCH BUDGET_S N OUTDIR
"""
import json
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR
from safetensors.torch import save_file
from ronan import starts
from ronan.generation import generate
from ronan.inversion import PRESETS, invert
from ronan.models.registry import load_model
from ronan.seeding import rng

name, device, width, batch, budget, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # exact fp32 (ronan.precision)
model = load_model(name, device); model.requires_grad_(False)
x_eval = generate(model, n, 0, purpose="calibration").float().to(device)
z_eval = model.sample_inputs(n, rng(0, "calibration")).flatten(1).to(device)
tag = f"{name}_w{width}_b{batch}"


def log(msg):
    print(f"{tag} {time.strftime('%T')} {msg}", flush=True)


def rel(net):
    with torch.no_grad():
        return ((net(x_eval).flatten(1) - z_eval).norm(dim=1) / z_eval.norm(dim=1)).median().item()


def train(steps):
    """``ronan.starts.train_inverse`` with this width and batch; the train loss at each fifth."""
    settings = starts.StartSettings(steps=steps, batch=batch, width=width)
    fifth = max(100, steps // 5 // 100 * 100)
    return starts.train_inverse(model, settings, callback=lambda step, total, loss: step % fifth or log(
        f"step {step}/{total}: train loss {loss:.3f}"))


t0 = time.perf_counter()
train(25)
if device == "cuda":
    torch.cuda.synchronize()
per_step = (time.perf_counter() - t0) / 25
steps = max(100, min(40000, int(budget / per_step) // 100 * 100))
log(f"{per_step * 1000:.1f} ms/step -> {steps} steps")
t0 = time.perf_counter()
net = train(steps)
trained = time.perf_counter() - t0
log(f"trained {steps} steps in {trained:.0f} s; relative distance {rel(net):.3f}")
state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
save_file(state, f"{out}/{tag}.safetensors")
settings = starts.StartSettings(steps=steps, batch=batch, width=width)
record = {"model": name, "settings": settings.to_dict(), "seconds": round(trained, 1), "device": device,
          "relative_distance": rel(net), "torch": torch.__version__}
starts.get_inverse = lambda model, settings=None, **kw: (net, None)  # the engine's learned start: this network
for preset in ("fast", "thorough"):
    t1 = time.perf_counter()
    res = invert(model, x_eval, settings=PRESETS[preset], seed=0)
    conv = int((res.loss < FLOOR).sum())
    record[preset] = conv
    log(f"{preset}: converged {conv}/{n} ({time.perf_counter() - t1:.0f} s); failed rows "
        f"{[i for i in range(n) if res.loss[i] >= FLOOR]}")
json.dump(record, open(f"{out}/{tag}.json", "w"), indent=1)
