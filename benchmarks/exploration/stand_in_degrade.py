"""Like for like under a stand-in: the file brought to the model's size, then passed through the
stand-in's edit (Pillow, seed 0), then attributed against the stand-in's distribution as a declared
edit (no builds), so that its samples and contrast set are the right comparison. Own images seed 1000,
real pictures the tier's test split (first N); prints B / N / I per source.

    python benchmarks/exploration/stand_in_degrade.py MODEL N FILE_EDIT STAND_IN
"""
import io
import sys
from collections import Counter

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from PIL import Image  # noqa: E402

from ronan import studio  # noqa: E402
from ronan.edits import parse_edit  # noqa: E402
from ronan.gallery import real_samples  # noqa: E402
from ronan.generation import generate_pil  # noqa: E402
from ronan.images import load_image  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

name, n, file_edit, stand_in = sys.argv[1], int(sys.argv[2]), parse_edit(sys.argv[3]), parse_edit(sys.argv[4])
gen = load_model(name)
split = "clipart-test" if gen.channels == 3 else "fmnist-test"
mode = "L" if gen.channels == 1 else "RGB"
sources = {"own": generate_pil(gen, n, 1000), "real": [Image.open(f).convert(mode) for f in real_samples(n, split)]}
for source, images in sources.items():
    counts, losses = Counter(), []
    for k, im in enumerate(images):
        data, ext = file_edit.to_file(im, seed=0)
        at_size = Image.open(io.BytesIO(data)).convert(mode).resize((gen.image_size, gen.image_size), Image.LANCZOS)
        out, ext2 = stand_in.to_file(at_size, seed=0)
        ev = None
        for ev in studio.run_attribution(load_image(out, name=f"{source}{k}{ext2}"), name, build_calibration=False,
                                         edit=stand_in.spec):
            pass
        r = ev.result
        counts[r.verdict] += 1
        losses.append(round(r.loss, 6))
    print(name, file_edit.spec, "->", stand_in.spec, source, dict(counts), flush=True)
