"""The model side of an attribution alone: raw losses of the first N held-out real pictures
(``real-test``) on MODEL with a preset; prints how many reached 8x the 8-bit floor (under the floor
rule, a picture that did not is inconclusive whatever the reference says).

    python benchmarks/exploration/model_side.py MODEL N OUT.json [PRESET] [FIRST:LAST]   # PRESET default two-path

``FIRST:LAST``: only those of the first N pictures (a source split over runs).
"""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch  # noqa: E402
from tier_tables import source_images  # noqa: E402

from ronan.distances import REACHED_FLOOR  # noqa: E402
from ronan.inversion import PRESETS, invert  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

torch.set_num_threads(1)
name, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
preset = sys.argv[4] if len(sys.argv) > 4 else "two-path"
m = load_model(name)
m.requires_grad_(False)
pictures = source_images("real-test", m, n)
if len(sys.argv) > 5:
    first, last = (int(v) for v in sys.argv[5].split(":"))
    pictures, n = pictures[first:last], last - first
x = torch.stack([m.preprocess(li.image) for li in pictures])
t0 = time.perf_counter()
res = invert(m, x, settings=PRESETS[preset], seed=0)
s = (time.perf_counter() - t0) / n
losses = res.loss.tolist()
print(f"{n} real-test on {name} {preset}: {s:.1f} s/image, min loss {min(losses):.3g}, "
      f"reached the floor: {sum(v < REACHED_FLOOR for v in losses)}", flush=True)
json.dump({"losses": losses, "s_per_image": s}, open(out, "w"))
