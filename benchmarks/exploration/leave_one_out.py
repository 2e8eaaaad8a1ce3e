"""Leave-one-out on a committed belonging distribution: each calibration sample tested (robust test,
floor rule, as a query's verdict) against the distribution without it; prints the counts of
(verdict, basis) and the inconclusive reasons.

    python benchmarks/exploration/leave_one_out.py calibration_cache/MODEL__REF__mse__KEY.json
"""
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import numpy as np  # noqa: E402

from ronan.verdict import DecisionSettings, decide, floor_for, summarize  # noqa: E402

d = json.loads(Path(sys.argv[1]).read_text())
V, L, S = np.array(d["values"]), np.array(d["losses"]), d.get("sample_settled")
counts, reasons = Counter(), Counter()
for i in range(len(V)):
    keep = [j for j in range(len(V)) if j != i]
    sm = summarize(V[keep], DecisionSettings(), settled=[S[j] for j in keep] if S else None, losses=L[keep],
                   floor=floor_for("mse", False))
    v = decide(float(V[i]), sm, settled=bool(S[i]) if S else True, loss=float(L[i]))
    counts[(v.verdict, v.basis)] += 1
    if v.verdict == "inconclusive":
        reasons[v.reasons[-1][:70]] += 1
print(dict(counts))
print(dict(reasons))
