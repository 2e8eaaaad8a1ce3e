"""One row schema for tables and CSV files, one CSV writer, and JSON-ready values.

Every table of results — a batch in the app, an evaluation's ``--csv``, which-model's table —
is made of :meth:`ronan.attribution.Attribution.to_row` rows (the columns of
:data:`ROW_FIELDS`) with the caller's own columns around them (a batch's ``label`` and
``error``, an evaluation's ``group``, ``source`` and ``correct``), written by :func:`write_csv`:
one row per image, which pandas reads directly.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

ROW_FIELDS = (
    "image",
    "verdict",
    "statistic",
    "critical_value",
    "calibrated_loss",
    "loss",
    "reference_loss",
    "reference_bound",
    "model",
    "reference",
    "n_calibration",
    "basis",
    "edit",
    "edit_source",
    "image_sha256",
    "seconds",
)
"""Columns of :meth:`~ronan.attribution.Attribution.to_row`, in order: the image, the verdict and
the numbers behind it (Grubbs' statistic and critical value, A', A(M, x), A(M_r, x), whether the
last is an upper bound: ``Attribution.reference_bound``), the models,
N, the sample the test used (``Attribution.basis``: ``"all"``, or ``"floor"`` under the floor
rule of :mod:`ronan.verdict`), the edit assumed and how (``Attribution.edit``, ``edit_source``:
e.g. ``jpeg:75`` ``stand-in``), the image's SHA-256 and the seconds per image."""


def empty_row(image: str, verdict: str = "error", **columns: Any) -> dict:
    """A row of :data:`ROW_FIELDS` for an image without a result (``verdict`` ``"error"``, the
    numbers None), then ``columns``."""
    return {k: None for k in ROW_FIELDS} | {"image": image, "verdict": verdict} | columns


def write_csv(rows: Iterable[dict], path: str | os.PathLike, fields: Sequence[str] | None = None) -> None:
    """Write ``rows`` to ``path`` as CSV with a header (None is written as an empty cell).

    Args:
        rows (iterable of dict): one dict per row.
        path (str | PathLike): the file (replaced).
        fields (sequence of str | None): the columns, in order (other keys of the rows are left
            out); default: the keys of the rows in the order they first appear.
    """
    rows = list(rows)
    if fields is None:
        fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def json_ready(obj: Any) -> Any:
    """``obj`` with non-finite floats (NaN, inf) replaced by None and tuples by lists, recursively
    through dicts and lists: what ``json.dumps`` writes as standard JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj
