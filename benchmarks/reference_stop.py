"""The reference's inversion only as far as the verdict needs: same verdicts, less time?

    python benchmarks/reference_stop.py --model dcgan-fmnist --n 100 \
        --sources model real-train real-test dcgan-fmnist-seed1 cgan-fmnist vae-fmnist
    python benchmarks/reference_stop.py --model dcgan-fmnist --n 100 --sources model real-test --edits jpeg:50

Each source's N images (``model``: N images of MODEL, seed 1000; ``real-train`` / ``real-test``: the
tier's committed real pictures; another name: that model's N images; as in ``tier_tables.py``),
optionally passed through each of ``--edits`` (assumed as ``tier_tables.py`` does), are attributed
as one batch twice: with ``full_reference=True`` (both inversions at once, each to its end: the
numbers exact) and with the default staged schedule (:func:`ronan.attribution._invert_group`: the
model's inversion split over the cores, then the reference's, each image's ending once its verdict
is certain). Printed per row: the verdicts that differ (the claim: none, up to float rounding at
the threshold), how many reference losses are bounds and at which step they ended, the largest
relative difference of the model's loss, and seconds per image of each schedule (1 torch thread;
the full run first, so a warm cache favours the staged one by nothing but the models' warm-up,
done before).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tier_tables import DETECTABLE, edited, source_images  # noqa: E402

from ronan.attribution import attribute_batch  # noqa: E402
from ronan.generation import as_uploads, generate_pil  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402
from ronan.prepare import prepare  # noqa: E402
from ronan.provenance import environment  # noqa: E402


def compare(images: list, target, assume: str) -> dict:
    """Attribute ``images`` with the full reference and staged; the differences and the timings."""
    t0 = time.perf_counter()
    full = attribute_batch(images, target, edit=assume, full_reference=True)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    staged = attribute_batch(images, target, edit=assume)
    t_staged = time.perf_counter() - t0
    differ = [{"image": s.image, "full": [f.verdict, f.calibrated_loss], "staged": [s.verdict, s.calibrated_loss],
               "threshold": f.threshold} for s, f in zip(staged, full) if s.verdict != f.verdict]
    bounded = [s for s in staged if s.reference_bound]
    return {
        "n": len(images), "differ": differ, "bounded": len(bounded),
        "bounded_at_steps": sorted({s.reference_steps_run for s in bounded}),
        "bounded_all_non_belonging": all(s.verdict != "belonging" for s in bounded),
        "max_rel_model_loss_diff": max(abs(s.loss - f.loss) / max(f.loss, 1e-30) for s, f in zip(staged, full)),
        "full_s_per_image": t_full / len(images), "staged_s_per_image": t_staged / len(images),
        "verdicts": {v: sum(s.verdict == v for s in staged) for v in ("belonging", "non-belonging", "inconclusive")},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dcgan-fmnist")
    p.add_argument("--sources", nargs="+", default=["model", "real-test"])
    p.add_argument("--edits", nargs="*", default=[], help="edits applied to every image (default: none)")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    target = prepare(args.model)
    attribute_batch(source_images("real-test", model, 2), target)  # warm-up: models, learned starts, caches
    out = {"model": args.model, "n": args.n, "environment": environment(), "rows": []}
    for edit in args.edits or [None]:
        assume = "auto" if edit is None or edit.split(":")[0] in DETECTABLE else edit
        for src in args.sources:
            images = (as_uploads(generate_pil(model, args.n, 1000), args.model) if src == "model"
                      else source_images(src, model, args.n))
            row = {"source": src, "edit": edit} | compare(edited(images, edit), target, assume)
            out["rows"].append(row)
            print(f"{src:24s} {edit or 'pristine':10s} verdicts {row['verdicts']}; differ {len(row['differ'])}"
                  f"{' ' + json.dumps(row['differ']) if row['differ'] else ''}; reference bounds {row['bounded']} "
                  f"(ended at steps {row['bounded_at_steps']}); model loss max rel diff "
                  f"{row['max_rel_model_loss_diff']:.2g}; s/image full {row['full_s_per_image']:.3f}, staged "
                  f"{row['staged_s_per_image']:.3f} ({row['full_s_per_image'] / row['staged_s_per_image']:.2f}x)",
                  flush=True)
            if args.json_out:
                Path(args.json_out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
