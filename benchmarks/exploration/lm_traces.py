"""Per-image loss traces of each Levenberg-Marquardt stage of a preset, for belonging samples
and held-out real pictures, to study stop rules offline.

    python benchmarks/exploration/lm_traces.py upgan64-clipart two-path 100 30 out.json
    python benchmarks/exploration/lm_traces.py simulate bel.json real.json   # stall rules, offline


Records, per call of ``ronan.refine.refine`` made by the engine (the first path's refinement,
the second path's shell and free stages; the reference never runs here), the loss of every row
after every iteration. Belonging: the model's calibration samples (seed 0, 8-bit); real: the
first M pictures of the tier's committed held-out folder (``assets/samples/clipart-test``).

``simulate`` replays a family of stall rules on recorded traces: a row stops at iteration t >= K
when its loss is above H and fell by less than a fraction G over the last W iterations. Printed
per rule: belonging rows that reached the floor (8x the 8-bit floor) in the recording but would
have been stopped above it, and the LM iterations per real picture (all stages) with and without it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ronan.refine as refine_module  # noqa: E402
from ronan.generation import generate  # noqa: E402
from ronan.inversion import PRESETS, invert  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "samples"


def traced(calls: list):
    original = refine_module.refine

    def wrapper(*args, **kwargs):
        trace: list = []
        calls.append(trace)
        for it, value in original(*args, **kwargs):
            if it >= 0:
                trace.append(value.detach().cpu().tolist())
            yield it, value

    return original, wrapper


def run(model, x: torch.Tensor, preset: str) -> dict:
    calls: list = []
    original, wrapper = traced(calls)
    refine_module.refine = wrapper
    try:
        t0 = time.perf_counter()
        res = invert(model, x, settings=PRESETS[preset])
        seconds = time.perf_counter() - t0
    finally:
        refine_module.refine = original
    return {"loss": res.loss.tolist(), "retried": res.extra.get("retried"), "retry_kept": res.extra.get("retry_kept"),
            "seconds": seconds, "calls": calls}


def stall_stop(col, k: int, w: int, g: float, h: float):
    """Iteration (1-based) at which the stall rule stops a row with losses ``col``, or None."""
    for t in range(max(k, w + 1), len(col) + 1):
        if col[t - 1] > h and col[t - 1 - w] / col[t - 1] < 1 + g:
            return t
    return None


def iterations_run(col) -> int:
    changed = np.nonzero(np.diff(np.asarray(col)) != 0)[0]
    return int(changed[-1]) + 2 if len(changed) else 1


def simulate(bel_path: str, real_path: str) -> None:
    import itertools

    from ronan.distances import REACHED_FLOOR as floor
    bel = json.loads(Path(bel_path).read_text())["belonging"]
    real = json.loads(Path(real_path).read_text())["real"]
    n_real = len(real["loss"])
    for k, w, g, h in itertools.product([20, 40], [5, 10, 20], [0.01, 0.03, 0.1], [floor, 1e-4]):
        lost = 0
        for call in bel["calls"][:2]:  # the first path and the second path's shell stage
            a = np.asarray(call)
            for j in range(a.shape[1]):
                col, t = a[:, j], stall_stop(a[:, j], k, w, g, h)
                lost += bool((col < floor).any() and t is not None and col[t - 1] >= floor)
        total = saved = 0
        for call in real["calls"]:
            a = np.asarray(call)
            for j in range(a.shape[1]):
                r = iterations_run(a[:, j])
                t = stall_stop(a[:r, j], k, w, g, h)
                total, saved = total + r, saved + (r - t if t else 0)
        print(f"K={k} W={w} G={g} H={h:.0e}: belonging rows stopped above the floor {lost}; LM iterations per "
              f"real picture {total / n_real:.0f} -> {(total - saved) / n_real:.0f}")


def main() -> None:
    if sys.argv[1] == "simulate":
        simulate(sys.argv[2], sys.argv[3])
        return
    model_name, preset, n_bel, n_real, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(1)
    model = load_model(model_name)
    result = {"model": model_name, "preset": preset}
    if n_bel:
        result["belonging"] = run(model, generate(model, n_bel, 0, purpose="calibration"), preset)
        print("belonging", result["belonging"]["seconds"], flush=True)
    if n_real:
        files = sorted((SAMPLES / "clipart-test").glob("*.png"))[:n_real]
        x = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0)
                         .permute(2, 0, 1) for f in files])
        result["real"] = run(model, x, preset)
        print("real", result["real"]["seconds"], flush=True)
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
