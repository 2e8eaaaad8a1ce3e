"""Export small committed samples of real images for tests, examples and benchmarks.

    python -m ronan.train.samples --n 300 --seed 0                    # 28x28 Fashion-MNIST tier
    python -m ronan.train.samples --tier clipart --n 200 --seed 0     # 64x64 colour tier

Fashion-MNIST: writes assets/samples/fmnist-train/ and assets/samples/fmnist-test/ (PNG, 28x28,
grayscale) with a labels.csv each, drawn at random (seeded) from the two splits.

Colour tier: writes assets/samples/clipart-train/ (pictures the 64x64 models were trained on) and
assets/samples/clipart-test/ (held-out pictures, never trained on: see ``rgb_data.split_of``),
64x64 RGB PNG exactly as the training data (composited over white, fitted), with a labels.csv
naming the source picture of each file.
"""

from __future__ import annotations

import argparse
import csv

import torch

from ..images import to_pil
from .common import ASSETS, FMNIST_CLASSES, load_fashion_mnist


def _fmnist(n: int, seed: int) -> None:
    for split in ("train", "test"):
        x, y = load_fashion_mnist(split)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        out = ASSETS.parent / "samples" / f"fmnist-{split}"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "index", "label", "class"])
            for k, i in enumerate(idx.tolist()):
                name = f"{k:04d}.png"
                to_pil(x[i]).save(out / name)
                w.writerow([name, i, int(y[i]), FMNIST_CLASSES[int(y[i])]])
        print(f"wrote {n} images to {out}")


def _clipart(n: int, seed: int) -> None:
    from .rgb_data import clipart_dataset

    for split in ("train", "test"):
        x, names = clipart_dataset(split)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        out = ASSETS.parent / "samples" / f"clipart-{split}"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "picture"])
            for k, i in enumerate(idx.tolist()):
                name = f"{k:04d}.png"
                to_pil(x[i]).save(out / name, optimize=True)
                w.writerow([name, names[i]])
        print(f"wrote {len(idx)} images to {out}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tier", choices=["fmnist", "clipart"], default="fmnist")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    (_fmnist if args.tier == "fmnist" else _clipart)(args.n, args.seed)


if __name__ == "__main__":
    main()
