"""Images per forward pass of the refinement on the CPU: time per image of a forward pass at
chunk sizes 16 / 32 / 64 / 256 for each model, whether the outputs are bit-identical across them,
and 40 Levenberg-Marquardt iterations (Jacobian afresh every 4) on MODEL's first 4 calibration
samples from the learned start with chunk 256 against the default (``refine.default_chunk``).

    python benchmarks/exploration/refine_chunk.py upgan64-clipart dcgan64-clipart resgan64-clipart dcgan-fmnist
"""
import sys
import time

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT))
import torch
from ronan import refine, starts
from ronan.generation import generate
from ronan.models.registry import load_model

torch.set_num_threads(1)
names = sys.argv[1:] or ["upgan64-clipart"]
for name in names:
    m = load_model(name); m.requires_grad_(False)
    z = m.sample_inputs(256, torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = m.generate(z)
        same = all(torch.equal(torch.cat([m.generate(z[i:i + c]) for i in range(0, 256, c)]), whole) for c in (16, 32, 64))
        times = []
        for c in (16, 32, 64, 256):
            m.generate(z[:c]); t = time.perf_counter(); n = 0
            while time.perf_counter() - t < 2:
                m.generate(z[:c]); n += c
            times.append(f"{c}: {(time.perf_counter() - t) / n * 1000:.2f}")
    print(f"{name}: ms per image by chunk {', '.join(times)}; outputs bit-identical across chunks: {same}", flush=True)
name = names[0]
m = load_model(name); m.requires_grad_(False)
x = generate(m, 4, 0, purpose="calibration").float()
with torch.no_grad():
    s0 = starts.learned_inputs(m, x)
out = {}
for chunk in (256, None):
    u = s0.clone(); t = time.perf_counter()
    for it, v in refine.refine(lambda p: m.generate(p).float(), u, x, iterations=40, jacobian_every=4, chunk=chunk):
        if it < 0:
            break
        loss = v
    out[chunk] = u
    print(f"{name}: 40 LM iterations on 4 images, chunk {chunk or refine.default_chunk('cpu')}: "
          f"{time.perf_counter() - t:.1f} s, losses {[f'{v:.2e}' for v in loss.tolist()]}", flush=True)
print("refined inputs identical:", torch.equal(out[256], out[None]))
