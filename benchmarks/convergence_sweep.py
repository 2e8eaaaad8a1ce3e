"""Exploration of inversion strategies on belonging samples (issue 9): coarse-to-fine LM, longer LM,
candidates around the learned start. Written for a GPU session; not the engine (ronan/inversion.py),
but the same building blocks (learned start, torch Adam, ronan.refine).

    python benchmarks/convergence_sweep.py DEVICE N MODELS STRATEGIES JSON_OUT
    python benchmarks/convergence_sweep.py cuda 100 upgan64-clipart \
        "adam=100,lm=160,every=4;adam=100,cand=8,sig=0.3,lm=160" out.json

A strategy is comma-separated ``key=value``: ``adam`` Adam steps (lr 0.2) from the learned start
(default 100); ``cand``/``sig``: that many starts, the learned one and the others drawn around it
with standard deviation ``sig`` (torch.Generator seed 0), the best of each image kept after the
Adam steps (``pick=lm``: after 16 more LM iterations on every candidate); ``mr``: coarse-to-fine
LM first on the images average-pooled to these sizes (e.g. ``8-16-32``, ``mri`` iterations each);
``lm`` LM iterations at full size with a fresh Jacobian every ``every``. Converged: loss below 8x
the 8-bit floor. Prints converged / N, median loss and seconds per strategy.
"""
import sys, time, json, torch, torch.nn.functional as F
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ronan.starts as st
from ronan.generation import generate
from ronan.models.registry import load_model
from ronan.refine import refine
dev = sys.argv[1]; n = int(sys.argv[2]); models = sys.argv[3].split(","); strats = sys.argv[4].split(";")
torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
FLOOR = 8 * (1 / 255) ** 2 / 12
res = []
for name in models:
    model = load_model(name, dev)
    x = generate(model, n, 0, purpose="calibration").float().to(dev)
    with torch.no_grad():
        z0 = st.learned_inputs(model, x).clone()
    gen = lambda p: model.generate(p).float()
    def lm(z, target, fn, iters, every):
        for it, v in refine(fn, z, target, iterations=iters, jacobian_every=every, rows_per_jacobian=64 if dev == "cuda" else 16):
            pass
    def adam(z, steps, lr=0.2):
        xx = x if len(z) == len(x) else x.repeat(len(z) // len(x), 1, 1, 1)
        z = z.clone().requires_grad_(True); opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            opt.zero_grad(); l = (gen(z) - xx).pow(2).flatten(1).mean(1); l.sum().backward(); opt.step()
        return z.detach()
    for s in strats:  # "adam=100,mr=8-16-32,mri=12,lm=32,every=4"
        o = dict(kv.split("=") for kv in s.split(","))
        t0 = time.perf_counter(); z = z0.clone()
        K = int(o.get("cand", 1)); sig = float(o.get("sig", 0.5))
        if K > 1:  # candidates around the learned start, the best kept after Adam (+ a short LM when pick=lm)
            g = torch.Generator(device=dev).manual_seed(0)
            zc = z0.repeat(K, 1) + sig * torch.randn(K * n, z0.shape[1], generator=g, device=dev)
            zc[:n] = z0
            xs = x
            x = x.repeat(K, 1, 1, 1)
            zc = adam(zc, int(o.get("adam", 100)))
            if o.get("pick") == "lm": lm(zc, x, gen, 16, 4)
            with torch.no_grad(): lc = (gen(zc) - x).pow(2).flatten(1).mean(1).view(K, n)
            x = xs
            z = zc.view(K, n, -1)[lc.argmin(0), torch.arange(n, device=dev)].clone()
        elif int(o.get("adam", 100)): z = adam(z, int(o.get("adam", 100)))
        for lvl in [int(v) for v in o.get("mr", "").split("-") if v]:
            k = 64 // lvl
            lm(z, F.avg_pool2d(x, k), lambda p, k=k: F.avg_pool2d(gen(p), k), int(o.get("mri", 12)), int(o.get("every", 4)))
        lm(z, x, gen, int(o.get("lm", 32)), int(o.get("every", 4)))
        with torch.no_grad(): loss = (gen(z) - x).pow(2).flatten(1).mean(1).cpu()
        if dev == "cuda": torch.cuda.synchronize()
        r = {"model": name, "strat": s, "converged": int((loss < FLOOR).sum()), "n": n, "median": float(loss.median()),
             "s": round(time.perf_counter() - t0, 1), "losses": loss.tolist()}
        res.append(r); print(name, s, r["converged"], "/", n, "%.1e" % r["median"], r["s"], "s", flush=True)
json.dump(res, open(sys.argv[5], "w"))
