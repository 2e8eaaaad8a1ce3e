"""One convergence_sweep.py strategy on a slice [A, B) of a model's calibration samples (two
slices run side by side on two cores), CPU, 1 thread:

    python benchmarks/exploration/sweep_slice.py MODEL A B "STRATEGY" [N]
    python benchmarks/exploration/sweep_slice.py MODEL I,J,... - "STRATEGY" [N]   # chosen samples (N default 100)

The samples are those of ``convergence_sweep.py cpu N MODEL`` (N default B: the first N calibration
samples drawn together; a smaller draw gives other images).
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch
from convergence_sweep import FLOOR, run
from ronan import starts
from ronan.generation import generate
from ronan.models.registry import load_model

torch.set_num_threads(1)
name, strategy = sys.argv[1], sys.argv[4]
idx = [int(v) for v in sys.argv[2].split(",")] if "," in sys.argv[2] else list(range(int(sys.argv[2]), int(sys.argv[3])))
model = load_model(name); model.requires_grad_(False)
n = int(sys.argv[5]) if len(sys.argv) > 5 else (100 if "," in sys.argv[2] else idx[-1] + 1)
x = generate(model, n, 0, purpose="calibration").float()[idx]
with torch.no_grad():
    z0 = starts.learned_inputs(model, x).clone()
t0 = time.perf_counter()
loss = run(lambda p: model.generate(p).float(), z0, x, dict(kv.split("=") for kv in strategy.split(",")))
print(f"{name} samples {sys.argv[2]}{'' if ',' in sys.argv[2] else f'-{sys.argv[3]} (end excluded)'} {strategy}: "
      f"converged {(loss < FLOOR).sum().item()}/{len(idx)}, "
      f"losses {[f'{v:.1e}' for v in loss.tolist()]}, {time.perf_counter() - t0:.0f} s", flush=True)
