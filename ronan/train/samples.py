"""Export a small committed sample of real Fashion-MNIST images for tests and examples.

    python -m ronan.train.samples --n 300 --seed 0

Writes assets/samples/fmnist-train/ and assets/samples/fmnist-test/ (PNG, 28x28, grayscale)
with a labels.csv each, drawn at random (seeded) from the two splits.
"""

from __future__ import annotations

import argparse
import csv

import torch

from ..images import to_pil
from .common import ASSETS, FMNIST_CLASSES, load_fashion_mnist


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for split in ("train", "test"):
        x, y = load_fashion_mnist(split)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))[: args.n]
        out = ASSETS.parent / "samples" / f"fmnist-{split}"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "index", "label", "class"])
            for k, i in enumerate(idx.tolist()):
                name = f"{k:04d}.png"
                to_pil(x[i]).save(out / name)
                w.writerow([name, i, int(y[i]), FMNIST_CLASSES[int(y[i])]])
        print(f"wrote {args.n} images to {out}")


if __name__ == "__main__":
    main()
