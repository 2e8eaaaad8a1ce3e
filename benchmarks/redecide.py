"""Re-decide the per-image numbers of a ``tier_tables.py --json-out`` file under candidate rules.

    python benchmarks/redecide.py tier_tables.json
    python benchmarks/redecide.py tier_tables.json --raw      # without calibration: raw losses A(M, x)

No inversion is re-run: each image's calibrated loss A' and ``settled`` flag are tested against the
committed belonging distribution of its row (the same one the run used) under

* ``robust``: the default test (:mod:`ronan.verdict`, mode robust), with the floor rule (the
  image's raw loss A(M, x) against 8x the 8-bit floor, unedited MSE rows);
* ``robust-no-floor``: the same without the floor rule (the robust test before session 31);
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
from ronan.verdict import BELONGING, NON_BELONGING, DecisionSettings, decide, floor_for, summarize  # noqa: E402

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


def count(images: list[dict], rule: str, robust, paper, key: str = "calibrated_loss") -> dict:
    c = {"B": 0, "N": 0, "I": 0}
    for im in images:
        value = im[key]
        loss = None if rule == "robust-no-floor" else im["loss"]  # no raw loss: no floor rule
        v = decide(value, robust, settled=im["settled"], loss=loss).verdict
        if rule == "paper":
            v = decide(value, paper).verdict
        elif rule == "robust+paper" and v == BELONGING and decide(value, paper).verdict != BELONGING:
            v = NON_BELONGING
        c[{BELONGING: "B", NON_BELONGING: "N"}.get(v, "I")] += 1
    return c


def main() -> None:
    raw = "--raw" in sys.argv[2:]
    key = "loss" if raw else "calibrated_loss"
    run = json.loads(Path(sys.argv[1]).read_text())
    model = load_model(run["model"])
    ref = load_model(run["reference"]) if run["reference"] else None
    settings = resolve_settings(run["preset"], model=model)
    for label, block in blocks(run).items():
        edit = resolve_edit(None, model.image_size, model.channels, block.pop("spec"))
        dist = get_distribution(model, ref, settings=settings, build=False, edit=edit, edit_mode=block.pop("mode"))
        values = dist.losses if raw else dist.values
        floor = floor_for(dist.distance, dist.edit is not None)
        robust = summarize(values, DecisionSettings(mode="robust"), settled=dist.sample_settled, losses=dist.losses,
                           floor=floor)
        paper = summarize(values, DecisionSettings(mode="paper"))
        name = "A" if raw else "A'"
        on_floor = robust.on_floor
        print(f"\n{label}{' (no calibration)' if raw else ''}: robust threshold {name} < {robust.threshold:.3g} "
              f"({robust.n_kept} kept{'; cannot carry a verdict' if robust.problems else ''}), paper threshold "
              f"{name} < {paper.threshold:.3g}"
              + (f"; floor rule: {on_floor.n_kept} samples on the floor, threshold {name} < {on_floor.threshold:.3g}"
                 if on_floor is not None else ""))
        rules = ("robust", "robust-no-floor", "paper", "robust+paper")
        for source, images in block.items():
            cells = "  ".join(f"{rule}: B{c['B']} N{c['N']} I{c['I']}" for rule in rules
                              for c in [count(images, rule, robust, paper, key)])
            print(f"  {source:22s} {cells}")


if __name__ == "__main__":
    main()
