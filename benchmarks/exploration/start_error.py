"""Is the learned start's error concentrated in a few directions of the input? (Session 31.)

    python benchmarks/exploration/start_error.py resgan64-clipart

Draws 3,000 seeded inputs, makes their 8-bit images, and measures the learned start's error
z - start(G(z)): its median relative size, and how much of its variance the top k principal
directions hold (fitted on 2,000, checked on the 1,000 others). If a few directions held most of
it, candidates drawn along them (an error-shaped spread around the start) could reach the basin
that isotropic candidates miss.
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ronan import starts  # noqa: E402
from ronan.generation import quantize  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402
from ronan.seeding import rng  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    model = load_model(sys.argv[1])
    z = model.sample_inputs(3000, rng(12345, "start-error")).float()
    with torch.no_grad():
        x = quantize(torch.cat([model(z[i:i + 100]) for i in range(0, 3000, 100)]))
        z0 = starts.learned_inputs(model, x)
    e = (z - z0).flatten(1).numpy()
    rel = np.linalg.norm(e, axis=1) / np.linalg.norm(z.flatten(1).numpy(), axis=1)
    fit, held = e[:2000], e[2000:]
    mu = fit.mean(0)
    w, v = np.linalg.eigh(np.cov(fit.T))
    w, v = w[::-1], v[:, ::-1]
    print(f"{sys.argv[1]}: median relative distance of the start {np.median(rel):.3f}; error variance per "
          f"direction: largest {w[0]:.2f}, mean {w.mean():.2f}, smallest {w[-1]:.3f}")
    for k in (10, 20, 40, 64):
        part = (((held - mu) @ v[:, :k]) ** 2).sum() / ((held - mu) ** 2).sum()
        print(f"top {k:3d} of {len(w)} directions: {np.cumsum(w)[k - 1] / w.sum():.3f} of the variance (fit), "
              f"{part:.3f} (held out)")


if __name__ == "__main__":
    main()
