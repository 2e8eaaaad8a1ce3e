"""One source of tier_tables.py's rows alone, so that two sources run side by side on two cores:
the same attribution (calibrated, robust test, full reference inversion, 1 torch thread), per-image
numbers as JSON (``tier_tables.per_image``); re-decide or count them offline.

    python benchmarks/exploration/one_source.py MODEL PRESET SOURCE N OUT.json [staged|full] [FIRST:LAST]

SOURCE: ``belonging`` (N images of MODEL, seed 1000, never its calibration samples) or any source
of ``tier_tables.py --others`` (``real-test``, another model's name, ...). ``staged``: the
reference's inversion only as far as the verdict needs (the product's default; the calibrated
robust verdicts are the full run's, the paper-test and raw rows cannot be re-decided from it).
``full`` (default): the whole reference inversion. ``FIRST:LAST``: only those of the N images (a
source split over processes).
"""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "benchmarks"))
import torch  # noqa: E402
from tier_tables import per_image, source_images  # noqa: E402

from ronan.attribution import attribute_batch  # noqa: E402
from ronan.generation import as_uploads, generate_pil  # noqa: E402
from ronan.models.registry import default_reference, load_model  # noqa: E402
from ronan.prepare import prepare  # noqa: E402

torch.set_num_threads(1)
model_name, preset, src, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
model = load_model(model_name)
target = prepare(model_name, default_reference(model), preset=preset)
imgs = as_uploads(generate_pil(model, n, 1000), model_name) if src == "belonging" else source_images(src, model, n)
if len(sys.argv) > 7:
    first, last = (int(v) for v in sys.argv[7].split(":"))
    imgs, n = imgs[first:last], last - first
t0 = time.perf_counter()
staged = len(sys.argv) > 6 and sys.argv[6] == "staged"
res = attribute_batch(imgs, target, edit="auto", full_reference=not staged)
s = (time.perf_counter() - t0) / n
verdicts = [r.verdict for r in res]
print(f"{model_name} {preset} {src}: {n} images, {s:.2f} s/image, "
      + ", ".join(f"{v} {verdicts.count(v)}" for v in ("belonging", "non-belonging", "inconclusive")), flush=True)
json.dump({"model": model_name, "preset": preset, "source": src, "images": per_image(res), "s_per_image": s},
          open(out, "w"))
