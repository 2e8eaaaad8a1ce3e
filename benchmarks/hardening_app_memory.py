"""Resident memory of the app with its queue full of worst-case requests (issue 12).

Phase by phase, starts ``app.py`` on loopback (its own process, a temporary calibration cache),
fills its queue (``RONAN_QUEUE_SIZE``, 16) with one kind of worst-case request allowed by the
limits of :mod:`ronan.limits`, plus a few more that the full queue refuses, samples the app's
resident memory (``VmRSS`` of the app and its children, every 0.25 s) for ``--seconds``, and stops
the app:

* ``attribute``: a 203 KB PNG declaring 7999x7999, steps 5000, restarts 64 (the most rows per
  image), building the belonging distribution for these settings (1024-row batches on M and M_r);
* ``calibrate``: ``cgan-fmnist`` (10 classes: 70 rows per image) with steps 5000, restarts 64, rebuilt;
* ``which_model``: the 7999x7999 PNG against every model;
* ``batch``: a 4 MB zip of twenty 8000x8000 PNGs (1280 decoded megapixels).

Usage::

    python benchmarks/hardening_app_memory.py [--seconds 60] [--json FILE] [--tree OTHER_CHECKOUT]

Prints, per phase, the baseline (app started, page served) and the peak, then the overall peak.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hardening_memory import make_inputs  # noqa: E402


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``pid`` and its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for child in Path(f"/proc/{p}/task/{p}/children").read_text().split():
                todo.append(int(child))
        except OSError:
            continue
    return total / 1024


class Sampler:
    """Peak of :func:`tree_rss_mb` while running (a background thread)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(0.25)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, cache: str, tree: Path = HERE.parent) -> subprocess.Popen:
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), RONAN_CACHE_DIR=cache,
               GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", PYTHONPATH=str(tree))
    app = subprocess.Popen([sys.executable, str(tree / "app.py")], cwd=tree, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            return app
        except OSError:
            if app.poll() is not None:
                raise SystemExit(f"the app exited: {app.stderr.read()[-2000:]}")
            time.sleep(1)
    app.kill()
    raise SystemExit("the app did not start within 300 s")


def phases(files: dict) -> dict[str, tuple[str, list]]:
    from gradio_client import handle_file

    png = handle_file(str(files["png"]))
    return {
        "attribute": ("/attribute", [png, "dcgan-fmnist", "default", "mse", "fast", 5000, 64, None, 0.05, 0, True]),
        "calibrate": ("/calibrate", ["cgan-fmnist", "default", "mse", "fast", 5000, 64, None, True, 0.05]),
        "which_model": ("/which_model", [png, "fast", 0.05, 0]),
        "batch": ("/batch", [[handle_file(str(files["zip"]))], "dcgan-fmnist", "fast", 0.05, 0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60, help="sampling time per phase (default 60)")
    ap.add_argument("--extra", type=int, default=4, help="requests beyond the queue size (refused), default 4")
    ap.add_argument("--phases", nargs="+", default=["attribute", "calibrate", "which_model", "batch"])
    ap.add_argument("--inputs", default=os.path.join(tempfile.gettempdir(), "ronan-hardening-inputs"))
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--tree", default=str(HERE.parent), help="source tree whose app.py runs (default: this one)")
    args = ap.parse_args()
    from gradio_client import Client

    files = make_inputs(Path(args.inputs))
    queue = int(os.environ.get("RONAN_QUEUE_SIZE", "16"))
    out = {"queue_size": queue, "seconds_per_phase": args.seconds, "phases": {}}
    requests = phases(files)
    for name in args.phases:  # a fresh app per phase: jobs left running never leak into the next one
        port = free_port()
        app = start_app(port, tempfile.mkdtemp(prefix="ronan-bench-cache-"), Path(args.tree))
        try:
            url = f"http://127.0.0.1:{port}/"
            clients = [Client(url, verbose=False) for _ in range(queue + args.extra)]
            baseline = tree_rss_mb(app.pid)
            api, inputs = requests[name]
            with Sampler(app.pid) as s:
                jobs = [c.submit(*inputs, api_name=api) for c in clients]
                time.sleep(args.seconds)
                ended = [j for j in jobs if j.done()]
                refused = sum(1 for j in ended if j.exception() is not None and "queue" in str(j.exception()).lower())
            row = {"baseline_mb": round(baseline, 1), "peak_mb": round(s.peak, 1), "requests": len(jobs),
                   "refused_queue_full": refused, "ended_within_window": len(ended)}
        finally:
            app.kill()
            app.wait(30)
        out["phases"][name] = row
        print(json.dumps({name: row}), flush=True)
    out["peak_mb"] = max(r["peak_mb"] for r in out["phases"].values())
    print(json.dumps({"peak_mb": out["peak_mb"]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
