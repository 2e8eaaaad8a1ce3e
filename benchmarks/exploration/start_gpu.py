"""Larger, longer-trained start networks on fresh pairs, sized to a wall-clock budget (issue 9, GPU).

Trains ``ronan.starts.InverseNet`` exactly as ``ronan.starts.train_inverse`` does (same seeding,
Adam, cosine schedule, fresh pairs every step) with the given width and batch, for as many steps
as BUDGET seconds allow (timed on the first 20 steps, rounded down to hundreds, at most 40,000),
prints the held-out relative distance (the first N calibration samples) at fifths of the training,
then inverts those samples with ``fast`` and ``thorough`` using this network as the learned start
and prints how many reach 8x the 8-bit floor. Saves the network and its record under OUTDIR.

    python benchmarks/exploration/start_gpu.py MODEL DEVICE WIDTH BATCH BUDGET_S N OUTDIR
"""
import json
import math
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR
from safetensors.torch import save_file
from ronan import starts
from ronan.generation import generate, quantize
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
    net.eval()
    with torch.no_grad():
        r = ((net(x_eval).flatten(1) - z_eval).norm(dim=1) / z_eval.norm(dim=1)).median().item()
    net.train()
    return r


def train(steps, probe=None):
    g = rng(0, "learned-start")
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    net = starts.InverseNet(model.channels, model.image_size, math.prod(model.input_shape), width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    t0 = time.perf_counter()
    for step in range(steps):
        z = model.sample_inputs(batch, g)
        with torch.no_grad():
            x = quantize(model.generate(z).float())
        loss = (net(x) - z.reshape(len(z), -1)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if probe is not None and step + 1 == probe:
            torch.cuda.synchronize() if device == "cuda" else None
            return (time.perf_counter() - t0) / probe
        if (step + 1) % max(1, steps // 5) == 0:
            log(f"step {step + 1}/{steps}: train loss {loss.item():.3f}, held-out relative distance {rel(net):.3f}")
    return net.eval().requires_grad_(False)


per_step = train(25, probe=25)
steps = min(40000, int(budget / per_step) // 100 * 100)
log(f"{per_step * 1000:.1f} ms/step -> {steps} steps")
t0 = time.perf_counter()
net = train(steps)
trained = time.perf_counter() - t0
log(f"trained {steps} steps in {trained:.0f} s; relative distance {rel(net):.3f} (eval mode)")
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
