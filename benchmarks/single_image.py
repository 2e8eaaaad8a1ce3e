"""Seconds for one image attributed end to end (both inversions + test), warm models.

    python benchmarks/single_image.py --model dcgan-fmnist --repeats 10 --threads 1
    python benchmarks/single_image.py --model dcgan64-clipart --repeats 4 --threads 1

Loads the models and the belonging distribution once (warm-up attribution, not timed),
then times ``attribute()`` on real test images, generated images of the model, and prints
mean / median / max seconds per image.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ronan.attribution import attribute  # noqa: E402
from ronan.generation import generate_pil  # noqa: E402
from ronan.images import load_image  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dcgan-fmnist")
    p.add_argument("--preset", default="fast")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    folder = SAMPLES / ("fmnist-test" if model.image_size == 28 else "clipart-test")  # real images of its tier
    files = sorted(folder.glob("*.png"))[: args.repeats // 2 + 1]
    images = [load_image(f) for f in files] + generate_pil(load_model(args.model), args.repeats // 2 + 1, seed=77)
    attribute(images[0], args.model, preset=args.preset)  # warm-up: models, calibration cache
    times, verdicts = [], []
    for im in images[: args.repeats]:
        t0 = time.perf_counter()
        r = attribute(im, args.model, preset=args.preset)
        times.append(time.perf_counter() - t0)
        verdicts.append(r.verdict)
    print(f"{args.model} preset {args.preset} threads {torch.get_num_threads()}: {len(times)} images, "
          f"mean {statistics.mean(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s "
          f"per image (both inversions + Grubbs test)")


if __name__ == "__main__":
    main()
