"""Own images (seed 1000) vs real test pictures: is a failed own inversion's error localised? (issue 9)

    python benchmarks/exploration/residual_shape.py MODEL N PRESET OUT.json

Inverts N of each on the model alone and prints, per image, the loss and the per-pixel squared
error's median and quantiles, and the share of pixels off by more than 2/255.
"""
import json
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT))
import torch

torch.set_num_threads(1)
from ronan.models.registry import load_model
from ronan.generation import generate
from ronan.inversion import invert, PRESETS
from ronan.gallery import real_samples
from PIL import Image
name, n, preset, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = load_model(name)
own = generate(m, n, 1000).float()
real = torch.stack([m.preprocess(Image.open(p).convert("RGB")) for p in real_samples(n, "clipart-test")]).float()
rows = []
for label, x in (("own", own), ("real", real)):
    t = time.perf_counter()
    r = invert(m, x, settings=PRESETS[preset], seed=0)
    e = (r.reconstructions.float() - x).pow(2).mean(1).flatten(1)  # per-pixel squared error, channel mean
    for i in range(len(x)):
        q = torch.quantile(e[i], torch.tensor([0.5, 0.75, 0.9, 0.99]))
        rows.append(dict(src=label, loss=float(r.loss[i]), med=float(q[0]), q75=float(q[1]), q90=float(q[2]), q99=float(q[3]),
                         frac=float((e[i] > (2 / 255) ** 2).float().mean())))
    print(label, f"{time.perf_counter() - t:.0f} s", flush=True)
json.dump(rows, open(out, "w"))
for r in rows:
    print(f"{r['src']:5s} loss {r['loss']:.2e} med {r['med']:.2e} q75 {r['q75']:.2e} q90 {r['q90']:.2e} frac>2/255 {r['frac']:.3f}")
