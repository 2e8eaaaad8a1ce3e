import csv
import json
import shutil

import pytest

from ronan.evaluation import confusion, roc_auc
from test_cli import run


def test_confusion_counts():
    t = confusion([True, True, False], [False, True, False, False])
    assert (t["tp"], t["fn"], t["fp"], t["tn"]) == (2, 1, 1, 3)
    assert t["accuracy"] == pytest.approx(5 / 7)
    assert t["tpr"] == pytest.approx(2 / 3) and t["fpr"] == pytest.approx(1 / 4)
    assert (t["n_belonging"], t["n_non_belonging"]) == (3, 4)


def test_roc_auc():
    assert roc_auc([0.1, 0.2], [0.3, 0.4]) == 1.0  # lower score = belonging
    assert roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert roc_auc([0.5], [0.5]) == 0.5
    assert roc_auc([0.1, 0.35], [0.3, 0.4]) == pytest.approx(0.75)


def test_evaluate_cli_counts_and_csv(tmp_path, real_images):
    real = tmp_path / "real"
    real.mkdir()
    for p in real_images[:3]:
        shutil.copy(p, real / p.name)
    (real / "notes.txt").write_text("not an image: ignored")
    (real / "broken.png").write_bytes(b"garbage")
    out_csv = tmp_path / "rows.csv"
    p = run("evaluate", "dcgan-fmnist", "--belonging", "generate:dcgan-fmnist", "--n", "4",
            "--non-belonging", str(real), "--non-belonging", "generate:vae-fmnist", "--json", "--csv", str(out_csv),
            check_status=2)
    assert "broken.png" in p.stderr
    res = json.loads(p.stdout)
    assert (res["tp"], res["fn"], res["fp"], res["tn"]) == (4, 0, 0, 7)
    assert res["n_belonging"] == 4 and res["n_non_belonging"] == 7 and res["accuracy"] == 1.0 and res["auc"] == 1.0
    assert [r["source"] for r in res["rows"]] == [str(real), "generate:vae-fmnist"]
    assert [(r["tp"], r["tn"]) for r in res["rows"]] == [(4, 3), (4, 4)]
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 11
    assert {r["group"] for r in rows} == {"belonging", "non-belonging"}
    assert all(r["correct"] == "True" for r in rows)
    assert all(float(r["calibrated_loss"]) >= 0 for r in rows)
