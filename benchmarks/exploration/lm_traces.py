"""Per-image loss traces of each Levenberg-Marquardt stage of a preset, for belonging samples
and held-out real pictures, to study stop rules offline.

    python benchmarks/exploration/lm_traces.py upgan64-clipart two-path 100 30 out.json

Records, per call of ``ronan.refine.refine`` made by the engine (the first path's refinement,
the second path's shell and free stages; the reference never runs here), the loss of every row
after every iteration. Belonging: the model's calibration samples (seed 0, 8-bit); real: the
first M pictures of the tier's committed held-out folder (``assets/samples/clipart-test``).
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


def main() -> None:
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
