"""Peak memory of hostile uploads (issue 12): small files that declare huge images.

Each case runs in a fresh Python process and reports the growth of its peak resident memory
(``VmHWM`` minus ``VmRSS`` after imports, from /proc/self/status) while it:

* ``preview``: loads a 203 KB PNG declared 7999x7999 (what the app's upload preview does);
* ``preview8``: eight such loads at once, in threads (eight visitors uploading together);
* ``jpeg``: loads an 8000x8000 JPEG (decoded at reduced scale with ``draft``);
* ``batch``: a zip of twenty 8000x8000 PNGs (1.5 MB) through the app's batch intake and
  attribution (``studio.collect_batch`` + ``studio.run_batch``, 10 steps per image);
* ``float_tiff``: a 3500x3500 float TIFF (NaN and inf pixels) — 49 MB of float data.

Usage::

    python benchmarks/hardening_memory.py                     # this tree
    python benchmarks/hardening_memory.py --tree /tmp/old     # another checkout (e.g. before the change)
    python benchmarks/hardening_memory.py --cases preview batch

Prints one line per case and, with ``--json FILE``, writes the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ["preview", "preview8", "jpeg", "batch", "float_tiff"]


def status_kb(field: str, pid: str = "self") -> int:
    """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_inputs(folder: Path) -> dict[str, Path]:
    """The hostile files: a 7999x7999 PNG, an 8000x8000 JPEG, a zip of twenty 8000x8000 PNGs, a float TIFF."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {"png": folder / "bomb.png", "jpeg": folder / "big.jpg", "zip": folder / "twenty.zip",
           "tiff": folder / "float.tif"}
    if not out["png"].exists():
        Image.new("RGB", (7999, 7999), (90, 120, 200)).save(out["png"], optimize=True)
    if not out["jpeg"].exists():
        Image.new("RGB", (8000, 8000), (90, 120, 200)).save(out["jpeg"], quality=90)
    if not out["zip"].exists():
        buf = io.BytesIO()
        Image.new("RGB", (8000, 8000), (30, 60, 90)).save(buf, "PNG", optimize=True)
        with zipfile.ZipFile(out["zip"], "w", zipfile.ZIP_STORED) as z:
            for i in range(20):
                z.writestr(f"real/{i:02d}.png", buf.getvalue())
    if not out["tiff"].exists():
        arr = np.linspace(0, 1, 3500 * 3500, dtype=np.float32).reshape(3500, 3500)
        arr[0, :100] = np.nan
        arr[1, :100] = np.inf
        Image.fromarray(arr, "F").save(out["tiff"])
    return out


def run_case(case: str, files: dict[str, Path]) -> dict:
    """Run one case in this process; returns its figures."""
    import threading

    import torch

    torch.set_num_threads(1)
    from ronan import studio  # noqa: F401  (imports done before the baseline)
    from ronan.images import load_image

    base = status_kb("VmRSS")
    t0 = time.perf_counter()
    detail = ""
    if case == "preview":
        li = load_image(str(files["png"]))
        detail = f"{li.image.size[0]}x{li.image.size[1]} kept"
    elif case == "preview8":
        threads = [threading.Thread(target=load_image, args=(str(files["png"]),)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elif case == "jpeg":
        li = load_image(str(files["jpeg"]))
        detail = f"{li.image.size[0]}x{li.image.size[1]} kept"
    elif case == "float_tiff":
        li = load_image(str(files["tiff"]))
        detail = f"{li.image.size[0]}x{li.image.size[1]} kept"
    elif case == "batch":
        from ronan.errors import RonanError

        items = studio.collect_batch([str(files["zip"])])
        try:
            for ev in studio.run_batch(items, "dcgan-fmnist", preset="paper", steps=10, build_calibration=True):
                out = ev
            detail = f"{len(out.rows)} rows: " + ", ".join(sorted({r['verdict'] for r in out.rows}))
        except RonanError as e:  # the code before issue 12 failed here, after loading every image
            detail = f"failed after loading: {e}"
    else:
        raise SystemExit(f"unknown case {case}")
    return {"case": case, "peak_growth_mb": round((status_kb("VmHWM") - base) / 1024, 1),
            "rss_after_mb": round(status_kb("VmRSS") / 1024, 1), "seconds": round(time.perf_counter() - t0, 2),
            "detail": detail}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=str(HERE.parent), help="source tree to measure (default: this one)")
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    ap.add_argument("--inputs", default=os.path.join(tempfile.gettempdir(), "ronan-hardening-inputs"))
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    files = make_inputs(Path(args.inputs))
    if args.one:
        print(json.dumps(run_case(args.one, files)))
        return
    env = dict(os.environ, PYTHONPATH=args.tree, OMP_NUM_THREADS="1",
               RONAN_CACHE_DIR=tempfile.mkdtemp(prefix="ronan-bench-cache-"))
    rows = []
    for case in args.cases:
        p = subprocess.run([sys.executable, __file__, "--inputs", args.inputs, "--one", case], env=env,
                           capture_output=True, text=True, cwd=args.tree)
        if p.returncode != 0:
            rows.append({"case": case, "error": (p.stderr.strip().splitlines() or ["?"])[-1]})
        else:
            rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
