"""Files whose lossy encoding no edit models (lossy WebP; a colour image as a GIF or palette PNG; a
grey image as a palette PNG of the web palette's 6 levels, or of 16 or 64 adaptive levels; AVIF and
JPEG 2000; a PNG made from a JPEG; a JPEG saved again at a higher quality),
attributed as the app does (no builds): verdicts now against what Grubbs' test alone said (the
verdict before a rejection of such a file became inconclusive). Own images seed 1000, real pictures
the tier's test split (first N).

    python benchmarks/exploration/unmodelled.py MODEL N [ENCODINGS] [--no-ghost]   # e.g. webp:80,gif,pal-web,avif:60
"""
import io
import sys
from collections import Counter

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from PIL import Image  # noqa: E402

from ronan import studio  # noqa: E402
from ronan.gallery import real_samples  # noqa: E402
from ronan.generation import generate_pil  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402

if "--no-ghost" in sys.argv:  # as before the JPEG ghost: a PNG made from a JPEG taken for unedited
    sys.argv.remove("--no-ghost")
    import ronan.edits  # noqa: E402,F401  (its module ``detect``, not the function of that name)

    sys.modules["ronan.edits.detect"].earlier_jpeg_quality = lambda image: None
name, n = sys.argv[1], int(sys.argv[2])
gen = load_model(name)
mode = "L" if gen.channels == 1 else "RGB"
split = "clipart-test" if gen.channels == 3 else "fmnist-test"
sources = {"own": generate_pil(gen, n, 1000), "real": [Image.open(f).convert(mode) for f in real_samples(n, split)]}
encodings = {"webp:95": ("WEBP", {"quality": 95}), "webp:80": ("WEBP", {"quality": 80})}
if gen.channels == 3:
    encodings |= {"gif": ("GIF", {}), "png-palette": ("PNG", {}), "png-grey": ("PNG", {})}
else:
    encodings |= {"gif": ("GIF", {}), "pal-web": ("PNG", {}), "pal-16": ("PNG", {}), "pal-64": ("PNG", {})}
def _decoded_jpeg(image, quality):
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert(image.mode)


CHANGES = {
    "png-palette": lambda im: im.convert("P", palette=Image.ADAPTIVE),
    "png-grey": lambda im: im.convert("L"),
    "pal-web": lambda im: im.convert("RGB").convert("P"),  # the web palette: 6 grey levels
    "pal-16": lambda im: im.quantize(16),
    "pal-64": lambda im: im.quantize(64),
    "png-of-jpeg:90": lambda im: _decoded_jpeg(im, 90),
    "png-of-jpeg:75": lambda im: _decoded_jpeg(im, 75),
    "jpeg-of-jpeg:75-95": lambda im: _decoded_jpeg(im, 75),
    "jpeg-of-jpeg:50-90": lambda im: _decoded_jpeg(im, 50),
}
encodings |= {
    "avif:90": ("AVIF", {"quality": 90}),
    "avif:60": ("AVIF", {"quality": 60}),
    "j2k:10": ("JPEG2000", {"quality_mode": "rates", "quality_layers": [10]}),  # 10:1
    "j2k:lossless": ("JPEG2000", {}),
    "png-of-jpeg:90": ("PNG", {}),  # a JPEG at quality 90, decoded and saved as PNG
    "png-of-jpeg:75": ("PNG", {}),
    "jpeg-of-jpeg:75-95": ("JPEG", {"quality": 95}),  # a JPEG at quality 75, saved again at 95
    "jpeg-of-jpeg:50-90": ("JPEG", {"quality": 90}),
}
if len(sys.argv) > 3:
    encodings = {k: v for k, v in encodings.items() if k in sys.argv[3].split(",")}
for enc, (fmt, kw) in encodings.items():
    for source, images in sources.items():
        now, before = Counter(), Counter()
        for im in images:
            buf = io.BytesIO()
            CHANGES.get(enc, lambda i: i)(im).save(buf, fmt, **kw)
            out = None
            for out in studio.run_attribution(buf.getvalue(), name, build_calibration=False):
                pass
            r = out.result
            now[r.verdict] += 1
            others = [x for x in r.reasons if not x.startswith("the file is")]  # the rule's reason aside
            before[r.test_verdict if r.reasons and not others else r.verdict] += 1
        print(name, enc, source, "now", dict(now), "before", dict(before), flush=True)
