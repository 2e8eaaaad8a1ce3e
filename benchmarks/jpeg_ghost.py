"""How well an earlier JPEG compression is found in a lossless file's pixels (ronan.edits.ghost).

    PYTHONPATH=. python benchmarks/jpeg_ghost.py [N]

Pictures: N (default 40) real test pictures of each tier (Fashion-MNIST test and clip-art test from
index 20 on) and N images each of dcgan-fmnist, vae-fmnist, dcgan64-clipart and upgan64-clipart
(seed 2000), each as it is (never compressed: a finding there is a false alarm) and after a JPEG at
qualities 95, 90, 85, 75, 60 and 50 (Pillow's defaults), decoded as a PNG would keep them; and, never
compressed, enlarged 2x (another false alarm to look for). The method
was written on other pictures (seed 1000 images 0-9 of dcgan-fmnist and dcgan64-clipart, the first 10
real test pictures of each tier). Prints, per group and quality, how often an earlier JPEG is found
and how far the quality found is from the true one; then, for JPEG files (an earlier compression looked
for under the file's own quality), how often one is found in a single JPEG (a false alarm) and in a
JPEG saved again at a higher quality (q75 then q95, q50 then q90, q85 then q95).
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ronan.edits.ghost import earlier_jpeg_quality  # noqa: E402
from ronan.generation import generate_pil  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"
QUALITIES = (95, 90, 85, 75, 60, 50)
DOUBLE = ((75, 95), (50, 90), (85, 95))
"""A JPEG saved again as a JPEG at a higher quality: (first, last)."""


def groups(n: int) -> dict[str, list[Image.Image]]:
    """The held-out pictures (see the module docstring), by group."""
    out = {
        "real fmnist-test": [Image.open(f).convert("L") for f in sorted((SAMPLES / "fmnist-test").glob("*.png"))[20 : 20 + n]],
        "real clipart-test": [Image.open(f).convert("RGB") for f in sorted((SAMPLES / "clipart-test").glob("*.png"))[20 : 20 + n]],
    }
    for name in ("dcgan-fmnist", "vae-fmnist", "dcgan64-clipart", "upgan64-clipart"):
        out[name] = generate_pil(load_model(name), n, 2000)
    return out


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert(image.mode)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    for group, images in groups(n).items():
        alarms = sum(earlier_jpeg_quality(im) is not None for im in images)
        up = [im.resize((2 * im.width, 2 * im.height), Image.Resampling.LANCZOS) for im in images]
        upscaled = sum(earlier_jpeg_quality(im) is not None for im in up)
        print(f"{group}: never compressed, found in {alarms} of {len(images)}; upscaled 2x (Lanczos): "
              f"{upscaled}", flush=True)
        for q in QUALITIES:
            found = [earlier_jpeg_quality(jpeg(im, q)) for im in images]
            errors = Counter(abs(f - q) for f in found if f is not None)
            hits = sum(f is not None for f in found)
            within1 = sum(c for e, c in errors.items() if e <= 1)
            print(f"  JPEG q{q}: found in {hits} of {len(images)}; within 1: {within1}, within 3: "
                  f"{sum(c for e, c in errors.items() if e <= 3)}, largest error {max(errors, default=0)}", flush=True)
        for first, last in DOUBLE:  # a JPEG file: an earlier compression under its own quality
            single = sum(earlier_jpeg_quality(jpeg(im, last), below=last - 2) is not None for im in images)
            found = [earlier_jpeg_quality(jpeg(jpeg(im, first), last), below=last - 2) for im in images]
            errors = [abs(f - first) for f in found if f is not None]
            print(f"  JPEG q{last} alone: an earlier one found in {single} of {len(images)}; q{first} then q{last}: "
                  f"found in {len(errors)}, within 3: {sum(e <= 3 for e in errors)}, largest error "
                  f"{max(errors, default=0)}", flush=True)


if __name__ == "__main__":
    main()
