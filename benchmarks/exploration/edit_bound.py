"""A candidate rule re-decided offline on `tier_tables.py --json-out` runs (no inversion re-run): an
edited query's "not belonging" holds only where its loss lies 2x (the stand-in's margin) beyond the
edit's largest own error (`stand_in.own_errors`, 32 own images), else it would be inconclusive.

    python benchmarks/exploration/edit_bound.py RUN.json [RUN.json ...]
"""
import json
import re
import sys

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]; sys.path.insert(0, str(ROOT))
import torch

torch.set_num_threads(1)
from ronan.models.registry import load_model
from ronan.edits.spec import parse_edit
from ronan.edits.stand_in import own_errors
for f in sys.argv[1:]:
    d = json.load(open(f)); model = load_model(d['model'])
    print(f, d['model'])
    for key, imgs in d['images'].items():
        spec = re.search(r'\[([^;]+);', key).group(1)
        most = float(own_errors(model, [parse_edit(spec)])[0].max())
        v = [i['verdict'] for i in imgs]
        nb = [i for i in imgs if i['verdict'] == 'non-belonging']
        flip = [i for i in nb if not i['loss'] > 2 * most]
        src = key.split(' [')[0]
        print(f"  {src:10s} {spec:12s} most {most:.2e}: B {v.count('belonging')} N {len(nb)} I {v.count('inconclusive')} -> N->I {len(flip)} (losses {[round(i['loss'],6) for i in flip][:6]})")
