"""Ensemble Kalman inversion (EKI) before the refinement: a derivative-free search whose step is the
generator linearised *statistically* over an ensemble of inputs (a Gauss-Newton step on the generator
smoothed at the ensemble's spread), not at one point as LM does. Measured on calibration samples
(true inputs known); the ensemble starts around the learned start (spread SIG per coordinate, J
members, torch.Generator seed 0), K iterations, then LM (FINAL iterations, Jacobian every 4) from
the member with the lowest loss.

Update of member j (Z', Y': members' inputs and images minus their means, J x d and J x D):
    z_j += Z'^T (Y' Y'^T + lam I)^{-1} Y' (x - G(z_j)),  lam = MU * trace(Y' Y'^T) / J
(the push-through form of C_zy (C_yy + Gamma)^{-1}: a J x J solve).

    python benchmarks/exploration/convergence_eki.py MODEL FIRST:LAST J SIG K MU FINAL
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import torch  # noqa: E402
from convergence_sweep import FLOOR, lm, losses  # noqa: E402

from ronan import starts  # noqa: E402
from ronan.generation import generate  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402
from ronan.seeding import rng  # noqa: E402

torch.set_num_threads(1)
name, rg = sys.argv[1], sys.argv[2]
J, SIG, K, MU, FINAL = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
a, b = map(int, rg.split(":"))
model = load_model(name)
model.requires_grad_(False)
x = generate(model, b, 0, purpose="calibration").float()[a:]
z = model.sample_inputs(b, rng(0, "calibration")).flatten(1)[a:]
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()  # noqa: E731
with torch.no_grad():
    s = starts.learned_inputs(model, x).flatten(1)


def rel(u, i):
    return ((u - z[i]).norm() / z[i].norm()).item()


def eki(i):
    """The best member after K iterations for image i, and a line of its trace."""
    g = torch.Generator().manual_seed(0)
    zz = s[i] + SIG * torch.randn(J, s.shape[1], generator=g)
    zz[0] = s[i]
    target = x[i].flatten()
    trace = []
    with torch.no_grad():
        for k in range(K + 1):
            y = gen(zz).flatten(1)
            mis = target - y
            loss = mis.pow(2).mean(1)
            if k in (0, K // 4, K // 2, K):
                trace.append(f"{k}:{loss.min().item():.1e}/{rel(zz.mean(0), i):.2f}/{rel(zz[loss.argmin()], i):.2f}")
            if k == K:
                break
            zc, yc = zz - zz.mean(0), y - y.mean(0)
            gram = yc @ yc.T
            lam = MU * gram.diagonal().mean()
            w = torch.linalg.solve(gram + lam * torch.eye(J), yc @ mis.T)  # J x J
            zz = zz + (zc.T @ w).T
    return zz[loss.argmin()].clone(), " ".join(trace)


t0 = time.perf_counter()
best = []
for i in range(len(x)):
    zi, tr = eki(i)
    best.append(zi)
    print(f"sample {a + i}: start rel {rel(s[i], i):.2f}; iter:best loss/mean rel/best rel {tr}", flush=True)
zb = torch.stack(best)
t1 = time.perf_counter()
print(f"EKI done {t1 - t0:.0f} s; median rel of best members {((zb - z).norm(dim=1) / z.norm(dim=1)).median().item():.2f}", flush=True)
lm(gen, zb, x, FINAL, 4)
ll = losses(gen, zb, x)
print(
    f"{name} {a}:{b} J={J} sig={SIG} K={K} mu={MU} final={FINAL}: converged {(ll < FLOOR).sum().item()}/{b - a} "
    f"{[i + a for i in range(b - a) if ll[i] < FLOOR]} median {ll.median().item():.2e} "
    f"rel after LM {((zb - z).norm(dim=1) / z.norm(dim=1)).median().item():.2f} {time.perf_counter() - t0:.0f} s",
    flush=True,
)
