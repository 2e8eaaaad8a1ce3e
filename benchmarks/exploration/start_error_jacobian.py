"""Where does the learned start's error lie relative to the generator's Jacobian at the true input?

    python benchmarks/exploration/start_error_jacobian.py MODEL N

For each of the first N calibration samples: the finite-difference Jacobian J of the generator at
the true input z (d + 1 forward passes), its singular values, the share of the start's error
s - z in the 8 / 32 / 64 strongest right singular directions (isotropic: 8/128, 32/128, 64/128),
and the linearised image error |J (s - z)|^2 against the true one (how far from linear the
generator is over the start's distance). Session 33.
"""
import sys, math
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT))
import torch
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model
from ronan.seeding import rng
torch.set_num_threads(2)
name, n = sys.argv[1], int(sys.argv[2])
model = load_model(name); model.requires_grad_(False)
x = generate(model, n, 0, purpose="calibration").float()
z = model.sample_inputs(n, rng(0, "calibration")).flatten(1)
gen = lambda p: model.generate(p.view(len(p), *model.input_shape)).float()
with torch.no_grad():
    s = starts.learned_inputs(model, x).flatten(1)
for i in range(n):
    eps = 1e-3
    with torch.no_grad():
        P = z[i] + eps * torch.eye(z.shape[1])
        J = ((gen(P).flatten(1) - gen(z[i:i+1]).flatten(1)) / eps).T  # (P, d), finite differences
    U, S, Vh = torch.linalg.svd(J, full_matrices=False)
    e = s[i] - z[i]
    c = Vh @ e  # error in the right singular basis, strongest first
    q = [int(k) for k in (8, 32, 64, 128)]
    frac = [float((c[:k] ** 2).sum() / (c ** 2).sum()) for k in q]
    lin = float(((J @ e) ** 2).mean())  # linearised image error
    true = float(((gen(s[i:i+1])[0].flatten() - x[i].flatten()) ** 2).mean())
    print(f"{i:2d} rel {float(e.norm()/z[i].norm()):.2f} S[0] {S[0]:.2f} S[31] {S[31]:.3f} S[63] {S[63]:.4f} S[127] {S[127]:.5f} "
          f"err share top8/32/64 {frac[0]:.2f}/{frac[1]:.2f}/{frac[2]:.2f} lin {lin:.2e} true {true:.2e}", flush=True)
