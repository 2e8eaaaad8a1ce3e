"""One row schema (Attribution.to_row, ronan.rows) and one CSV writer."""

from __future__ import annotations

import csv
import math

from ronan.rows import ROW_FIELDS, empty_row, json_ready, write_csv


def test_rows_and_csv(tmp_path):
    rows = [{"image": "a.png", "label": "real"} | empty_row("a.png", verdict="belonging") | {"error": ""},
            {"image": "b.png", "label": ""} | empty_row("b.png") | {"error": "b.png: file is empty"}]
    assert list(rows[0]) == ["image", "label", *ROW_FIELDS[1:], "error"]
    path = tmp_path / "rows.csv"
    write_csv(rows, path)
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == list(rows[0]) and back[1]["verdict"] == "error" and back[1]["statistic"] == ""
    write_csv(rows, path, ["image", "verdict"])
    assert path.read_text().splitlines() == ["image,verdict", "a.png,belonging", "b.png,error"]


def test_json_ready():
    assert json_ready({"a": math.nan, "b": [1.0, math.inf, (2, -math.inf)], "c": "x"}) == \
        {"a": None, "b": [1.0, None, [2, None]], "c": "x"}
