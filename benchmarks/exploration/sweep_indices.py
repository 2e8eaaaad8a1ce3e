"""One convergence_sweep.py strategy on chosen samples I,J,... of a model's first 100 calibration
samples, CPU, 1 thread:

    python benchmarks/exploration/sweep_indices.py MODEL I,J,... "STRATEGY"
"""
import sys, time
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR, run
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model
torch.set_num_threads(1)
name, idx, strategy = sys.argv[1], [int(v) for v in sys.argv[2].split(",")], sys.argv[3]
model = load_model(name); model.requires_grad_(False)
x = generate(model, 100, 0, purpose="calibration").float()[idx]
with torch.no_grad():
    z0 = starts.learned_inputs(model, x).clone()
t0 = time.perf_counter()
loss = run(lambda p: model.generate(p).float(), z0, x, dict(kv.split("=") for kv in strategy.split(",")))
print(f"{name} samples {idx} {strategy}: converged {(loss < FLOOR).sum().item()}/{len(idx)}, "
      f"losses {[f'{v:.1e}' for v in loss.tolist()]}, {time.perf_counter() - t0:.0f} s", flush=True)
