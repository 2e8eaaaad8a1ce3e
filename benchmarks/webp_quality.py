"""How well a lossy WebP's quality is read from the file (ronan.edits.webp.estimate_quality).

    PYTHONPATH=. python benchmarks/webp_quality.py

Files: Pillow lossy WebPs of 12 clip-art test pictures (20-31), 6 Fashion-MNIST test pictures (20-25)
and 6 images each of dcgan-fmnist and dcgan64-clipart (seed 2000), each resized to 28, 64 and 256 px
and saved at qualities 0, 5, ..., 100 (1,890 files; the method was written on other pictures:
clip-art test 0-5 and Fashion-MNIST test 0-1). Prints how often the true quality is among the
candidates, the estimate's error, and the errors above 2 by image size.
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ronan.edits.webp import estimate_quality  # noqa: E402
from ronan.generation import generate_pil  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


def pictures() -> list[Image.Image]:
    """The held-out pictures and generated images (see the module docstring)."""
    files = sorted((SAMPLES / "clipart-test").glob("*.png"))[20:32] + sorted((SAMPLES / "fmnist-test").glob("*.png"))[20:26]
    images = [Image.open(f).convert("RGB") for f in files]
    for name in ("dcgan-fmnist", "dcgan64-clipart"):
        images += generate_pil(load_model(name), 6, 2000)
    return images


def main() -> None:
    errors, sizes, missed, spans = [], [], 0, []
    for picture in pictures():
        for side in (28, 64, 256):
            image = picture.resize((side, side))
            for quality in range(0, 101, 5):
                buf = io.BytesIO()
                image.save(buf, "WEBP", quality=quality)
                data = buf.getvalue()
                estimate, _, candidates = estimate_quality(data, Image.open(io.BytesIO(data)).convert(image.mode))
                errors.append(abs(estimate - quality))
                sizes.append(side)
                missed += quality not in candidates
                spans.append(candidates[-1] - candidates[0])
    e = np.array(errors)
    print(f"{len(e)} files: true quality not among the candidates {missed}; candidates span median "
          f"{np.median(spans):g}, 90th percentile {np.quantile(spans, 0.9):g}, max {max(spans)}")
    print(f"estimate exact {np.mean(e == 0):.1%}, within 1 {np.mean(e <= 1):.1%}, within 2 {np.mean(e <= 2):.1%}, "
          f"within 5 {np.mean(e <= 5):.1%}, largest error {e.max()}")
    off, total = Counter(s for s, x in zip(sizes, errors) if x > 2), Counter(sizes)
    print("errors above 2 by size: " + ", ".join(f"{s} px {off[s]}/{total[s]}" for s in sorted(total)))


if __name__ == "__main__":
    main()
