"""Engine preset on the given calibration samples, once per seed (each seed on all of them)."""
import sys, time
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR
from ronan.generation import generate
from ronan.inversion import PRESETS, invert
from ronan.models.registry import load_model
import dataclasses
torch.set_num_threads(1)
name = sys.argv[1]; idx = [int(v) for v in sys.argv[2].split(",")]; seeds = [int(v) for v in sys.argv[3].split(",")]
preset = sys.argv[4] if len(sys.argv) > 4 else "thorough"
over = dict(kv.split("=") for kv in sys.argv[5].split(",")) if len(sys.argv) > 5 else {}
model = load_model(name); model.requires_grad_(False)
x = generate(model, 100, 0, purpose="calibration").float()[idx]
s = PRESETS[preset]
if over: s = dataclasses.replace(s, **{k: type(getattr(s, k))(v) for k, v in over.items()})
for seed in seeds:
    t0 = time.perf_counter()
    r = invert(model, x, settings=s, seed=seed)
    ok = (r.loss < FLOOR)
    print(f"{name} {preset} {over} seed {seed}: {int(ok.sum())}/{len(idx)} converged {[i for i, o in zip(idx, ok) if o]} ({time.perf_counter()-t0:.0f} s)", flush=True)
