"""Files whose edit has no belonging distribution where the run happens (a server that does not
build): verdicts with the stand-in rule (ronan.edits.stand_in) against the previous fallback
(tested as if unedited, every verdict as the test gave it).

Own images (the model's seed-1000 images, never calibration samples) and held-out real pictures
(the tier's test split, first N) go through each edit with Pillow, are saved as the file the edit
makes (JPEG or PNG) and attributed through ronan.studio.run_attribution(build_calibration=False),
as the app does for a visitor. Each verdict of the new rule is recorded, and the verdict the
previous fallback gives is re-decided from the same inversion where possible (the unedited
distribution); --previous runs it through the studio instead (costs a second inversion).

    python benchmarks/stand_in.py --model dcgan64-clipart --n 20 \
        --edits jpeg:95 jpeg:85 jpeg:80 jpeg:30 resize:4+jpeg:85 resize:2

Prints one row per (edit, source): belonging / not belonging / inconclusive, new and previous.
``--redecide FILE`` re-decides a recorded run with the current rule (no inversions).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter

from PIL import Image

from ronan import studio
from ronan.edits import parse_edit
from ronan.edits.stand_in import acceptance_holds, rejection_holds
from ronan.gallery import real_samples
from ronan.generation import generate_pil
from ronan.images import load_image
from ronan.models.registry import load_model


def _verdict(data: bytes, name: str, model: str, edit: str):
    li = load_image(data, name=name)
    out = None
    for ev in studio.run_attribution(li, model, build_calibration=False, edit=edit):
        out = ev
    return out.result


NOTE = re.compile(r"median MSE ([0-9.e+-]+), at most ([0-9.e+-]+);.* belonging losses ([0-9.e+-]+)\)")


def redecide(path: str) -> None:
    """Re-decide a --json-out file with the current rules (ronan.edits.stand_in.rejection_holds and
    acceptance_holds): a "not belonging" whose rejection, or a "belonging" whose acceptance, no longer
    holds turns inconclusive (the rules only ever tightened, so nothing else changes). Prints the rows
    as the main run does."""
    for row in json.load(open(path)):
        new = Counter()
        for im in row["images"]:
            verdict = im["verdict"]
            if verdict != "inconclusive" and im["edit_source"] == "stand-in":
                moved, most, far = (float(x) for x in NOTE.search(im["note"]).groups())
                holds = rejection_holds(moved, far, im["loss"], most) if verdict == "non-belonging" else (
                    acceptance_holds(im["loss"], most))
                verdict = verdict if holds else "inconclusive"
            new[verdict] += 1
        print(json.dumps(dict(edit=row["edit"], source=row["source"], n=row["n"], new=dict(new),
                              previous=row["previous"], stand_in=row["stand_in"])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="dcgan64-clipart")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--split", help="real pictures' folder in assets/samples (default: the tier's test split)")
    ap.add_argument("--edits", nargs="+", default=["jpeg:95", "jpeg:85", "jpeg:80", "jpeg:30", "resize:4+jpeg:85"])
    ap.add_argument("--json-out")
    ap.add_argument("--redecide", metavar="JSON", help="re-decide a --json-out file with the current rule; no run")
    args = ap.parse_args()
    if args.redecide:
        return redecide(args.redecide)
    gen = load_model(args.model)
    args.split = args.split or ("clipart-test" if gen.channels == 3 else "fmnist-test")
    sources = {
        "own": generate_pil(gen, args.n, 1000),
        "real": [Image.open(f).convert("L" if gen.channels == 1 else "RGB") for f in real_samples(args.n, args.split)],
    }
    rows = []
    for spec in args.edits:
        edit = parse_edit(spec)
        for source, images in sources.items():
            new, old, images_out = Counter(), Counter(), []
            t0 = time.perf_counter()
            for k, im in enumerate(images):
                data, ext = edit.to_file(im, seed=0)
                name = f"{source}{k}{ext}"
                r = _verdict(data, name, args.model, "auto")
                before = r.test_verdict if r.edit == "none" else _verdict(data, name, args.model, "none").verdict
                new[r.verdict] += 1
                old[before] += 1
                images_out.append(dict(verdict=r.verdict, test_verdict=r.test_verdict, previous=before, loss=r.loss,
                                       edit=r.edit, edit_source=r.edit_source, reasons=r.reasons,
                                       note=next((n for n in r.notes if n.startswith("stand-in")), None)))
            row = dict(edit=spec, source=source, n=len(images), new=dict(new), previous=dict(old),
                       seconds=round(time.perf_counter() - t0, 1), stand_in=images_out[0]["edit"],
                       note=images_out[0]["note"], images=images_out)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "images"}), flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
