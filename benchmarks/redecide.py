"""Re-decide the per-image numbers of a ``tier_tables.py --json-out`` file under candidate rules.

    python benchmarks/redecide.py tier_tables.json

No inversion is re-run: each image's calibrated loss A' and ``settled`` flag are tested against the
committed belonging distribution of its row (the same one the run used) under

* ``robust``: the default test (:mod:`ronan.verdict`, mode robust);
* ``paper``: the paper's test (linear domain, all N values);
* ``robust+paper``: robust, but a belonging verdict must also pass the paper's test (else
  non-belonging) — the candidate of benchmarks/RESULTS.md, "A candidate rule".

Prints, per row block and source, how many images each rule finds belonging (B), non-belonging
(N) and inconclusive (I).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ronan.calibration import get_distribution  # noqa: E402
from ronan.edits.policy import resolve_edit  # noqa: E402
from ronan.inversion import resolve_settings  # noqa: E402
from ronan.models.registry import load_model  # noqa: E402
from ronan.verdict import BELONGING, NON_BELONGING, DecisionSettings, decide, summarize  # noqa: E402

LABEL = re.compile(r" \[(.*); assumed (\S+) \((\w+), mode (\w+)\)\]")


def blocks(run: dict) -> dict:
    """{edit label: {"spec", "mode", source: [image numbers]}} from a tier_tables JSON."""
    out: dict = {}
    for key, images in run["images"].items():
        m = LABEL.search(key)
        block = out.setdefault(m.group(1) if m else "none", {"spec": m.group(2) if m else "none",
                                                              "mode": m.group(4) if m else "samples"})
        block[key.split(" [")[0]] = images
    return out


def count(images: list[dict], rule: str, robust, paper) -> dict:
    c = {"B": 0, "N": 0, "I": 0}
    for im in images:
        v = decide(im["calibrated_loss"], robust, settled=im["settled"]).verdict
        if rule == "paper":
            v = decide(im["calibrated_loss"], paper).verdict
        elif rule == "robust+paper" and v == BELONGING and decide(im["calibrated_loss"], paper).verdict != BELONGING:
            v = NON_BELONGING
        c[{BELONGING: "B", NON_BELONGING: "N"}.get(v, "I")] += 1
    return c


def main() -> None:
    run = json.loads(Path(sys.argv[1]).read_text())
    model = load_model(run["model"])
    ref = load_model(run["reference"]) if run["reference"] else None
    settings = resolve_settings(run["preset"], model=model)
    for label, block in blocks(run).items():
        edit = resolve_edit(None, model.image_size, model.channels, block.pop("spec"))
        dist = get_distribution(model, ref, settings=settings, build=False, edit=edit, edit_mode=block.pop("mode"))
        robust = summarize(dist.values, DecisionSettings(mode="robust"), settled=dist.sample_settled)
        paper = summarize(dist.values, DecisionSettings(mode="paper"))
        print(f"\n{label}: robust threshold A' < {robust.threshold:.3g} ({robust.n_kept} kept), "
              f"paper threshold A' < {paper.threshold:.3g}")
        for source, images in block.items():
            cells = "  ".join(f"{rule}: B{c['B']} N{c['N']} I{c['I']}" for rule in ("robust", "paper", "robust+paper")
                              for c in [count(images, rule, robust, paper)])
            print(f"  {source:22s} {cells}")


if __name__ == "__main__":
    main()
