"""Round 1 = thorough-like (cand 8 around learned start, sig 0.3, adam 100, pick, lm 160/4);
then hop rounds on unconverged rows only: candidates around the best z so far."""
import sys, time, json
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import adam, lm, losses, FLOOR
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model
name, n, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
hops = sys.argv[4].split(";") if len(sys.argv) > 4 else []
torch.set_num_threads(int(__import__("os").environ.get("THREADS", "1")))
model = load_model(name); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float()
gen = lambda p: model.generate(p).float()
import os
if os.path.exists(state):
    st = torch.load(state); z1, l1 = st["z"], st["loss"]
    print(f"loaded round 1: {int((l1 < FLOOR).sum())}/{n}", flush=True)
else:
    t0 = time.perf_counter()
    with torch.no_grad(): z0 = starts.learned_inputs(model, x).clone()
    k, sig = 8, 0.3
    g = torch.Generator().manual_seed(0)
    zc = z0.repeat(k, 1) + sig * torch.randn(k * n, z0.shape[1], generator=g); zc[:n] = z0
    xc = x.repeat(k, 1, 1, 1)
    zc = adam(gen, zc, xc, 100)
    best = losses(gen, zc, xc).view(k, n).argmin(0)
    z1 = zc.view(k, n, -1)[best, torch.arange(n)].clone()
    lm(gen, z1, x, 160, 4)
    l1 = losses(gen, z1, x)
    torch.save({"z": z1, "loss": l1}, state)
    print(f"round 1: {int((l1 < FLOOR).sum())}/{n} median {l1.median():.1e} ({time.perf_counter()-t0:.0f} s)", flush=True)
for h in hops:
    o = dict(kv.split("=") for kv in h.split(","))
    z, l = z1.clone(), l1.clone()
    t0 = time.perf_counter(); work = 0
    for r in range(int(o.get("rounds", 2))):
        fail = (l >= FLOOR).nonzero().flatten()
        if len(fail) == 0: break
        k, sig, steps = int(o.get("cand", 8)), float(o.get("sig", 0.3)), int(o.get("adam", 100))
        g = torch.Generator().manual_seed(100 + r)
        zf, xf = z[fail], x[fail]
        zc = zf.repeat(k, 1) + sig * torch.randn(k * len(fail), zf.shape[1], generator=g)
        if o.get("keep", "1") == "1": zc[:len(fail)] = zf
        xc = xf.repeat(k, 1, 1, 1)
        if steps: zc = adam(gen, zc, xc, steps, lr=float(o.get("lr", 0.2)))
        if o.get("pick") == "lm": lm(gen, zc, xc, int(o.get("plm", 16)), 4)
        best = losses(gen, zc, xc).view(k, len(fail)).argmin(0)
        zn = zc.view(k, len(fail), -1)[best, torch.arange(len(fail))].clone()
        lm(gen, zn, xf, int(o.get("lm", 160)), 4)
        ln = losses(gen, zn, xf)
        better = ln < l[fail]
        z[fail[better]] = zn[better]; l[fail[better]] = ln[better]
        work += len(fail)
        print(f"  {h} round {r+1}: {len(fail)} tried, now {int((l < FLOOR).sum())}/{n} ({time.perf_counter()-t0:.0f} s)", flush=True)
    print(f"{h}: {int((l < FLOOR).sum())}/{n}, row-rounds {work}, {time.perf_counter()-t0:.0f} s", flush=True)
