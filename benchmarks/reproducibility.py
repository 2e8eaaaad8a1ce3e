"""What a committed belonging distribution is reproducible to: rebuild it under other kernels and threads.

    python benchmarks/reproducibility.py --model dcgan-fmnist --n 100
    python benchmarks/reproducibility.py --model dcgan64-clipart --n 30 --json-out repro.json

Each configuration runs in a fresh process (``ATEN_CPU_CAPABILITY`` must be set before torch is
imported): torch's vector kernels forced to ``default`` (no SIMD), ``avx2``, or left at this CPU's
best (``native``), with 1 or 2 threads, and with the samples inverted 100 at a time or 10 at a
time. Each rebuilds the first ``--n`` calibration samples of MODEL (the default preset, its default
reference) and compares with the committed cache: how many losses differ by more than 1% and by
how much at most, the mean and std of the calibrated values, and the verdicts of a fixed set of
queries (``--queries`` generated images of the model and as many committed real images) decided
against the rebuilt values. Those verdicts are the reproducibility that matters; the loss
tolerance stated in RESULTS.md ("Reproducibility") is the largest relative difference seen here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "native-t1-c100": {"capability": None, "threads": 1, "chunk": 100},
    "native-t2-c100": {"capability": None, "threads": 2, "chunk": 100},
    "native-t1-c10": {"capability": None, "threads": 1, "chunk": 10},
    "avx2-t1-c100": {"capability": "avx2", "threads": 1, "chunk": 100},
    "default-t1-c100": {"capability": "default", "threads": 1, "chunk": 100},
}


def child(model_name: str, n: int, chunk: int, queries: int) -> dict:
    """Rebuild in this process; returns the rebuilt losses, values and the query verdicts."""
    import torch

    sys.path.insert(0, str(ROOT))
    from ronan.attribution import attribute_batch
    from ronan.calibration import build_distribution, get_distribution
    from ronan.evaluation import verdicts
    from ronan.generation import as_uploads, generate_pil
    from ronan.images import load_image
    from ronan.inversion import resolve_settings
    from ronan.models.registry import default_reference, load_model
    from ronan.provenance import environment

    model = load_model(model_name)
    ref = load_model(default_reference(model_name))
    settings = resolve_settings(model=model)
    committed = get_distribution(model, ref, settings=settings, build=False)
    rebuilt = build_distribution(model, ref, settings=settings, n=n, chunk=chunk)   # the first n samples
    tier = "fmnist" if model.image_size == 28 else "clipart"
    images = as_uploads(generate_pil(model, queries, 1000)) + [
        load_image(f) for f in sorted((ROOT / "assets" / "samples" / f"{tier}-test").glob("*.png"))[:queries]]
    results = attribute_batch(images, model)            # the query inversions: as any user runs them
    # the rebuilt first n samples stand in for the committed ones: the other 100 - n stay as committed
    mixed = replace(committed, values=rebuilt.values + committed.values[n:], losses=rebuilt.losses + committed.losses[n:])
    decided = {"committed": verdicts(results, committed), "rebuilt": verdicts(results, mixed)}
    return {"environment": environment(), "losses": rebuilt.losses, "committed_losses": committed.losses[:n],
            "mean": rebuilt.mean, "std": rebuilt.std, "committed_mean": committed.mean, "committed_std": committed.std,
            "verdicts": decided, "query_losses": [r.loss for r in results], "torch": torch.__version__}


def compare(out: dict) -> dict:
    pairs = list(zip(out["losses"], out["committed_losses"]))
    rel = [abs(a - b) / max(b, 1e-30) for a, b in pairs]
    v = out["verdicts"]
    return {"cpu_capability": out["environment"]["cpu_capability"], "threads": out["environment"]["torch_threads"],
            "off_1pct": sum(r > 0.01 for r in rel), "max_rel": max(rel), "mean": out["mean"], "std": out["std"],
            "committed_mean": out["committed_mean"], "committed_std": out["committed_std"],
            "verdict_changes": sum(a != b for a, b in zip(v["committed"], v["rebuilt"])), "queries": len(v["rebuilt"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dcgan-fmnist")
    p.add_argument("--n", type=int, default=100, help="calibration samples rebuilt (the first n; default 100)")
    p.add_argument("--queries", type=int, default=10)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--json-out", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        cfg = CONFIGS[args.child]
        torch.set_num_threads(cfg["threads"])
        print(json.dumps(child(args.model, args.n, cfg["chunk"], args.queries)))
        return
    rows = {}
    for name in args.configs:
        env = dict(os.environ)
        env.pop("ATEN_CPU_CAPABILITY", None)
        if CONFIGS[name]["capability"]:
            env["ATEN_CPU_CAPABILITY"] = CONFIGS[name]["capability"]
        proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--n", str(args.n), "--queries",
                               str(args.queries), "--child", name], env=env, capture_output=True, text=True, check=True)
        rows[name] = compare(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(name, json.dumps(rows[name]), flush=True)
    print(f"\n{args.model}: rebuilt calibration (first {args.n} samples) vs committed cache; verdicts of "
          f"{2 * args.queries} queries decided against each")
    print("| config | CPU kernels | threads | losses > 1% off | max rel. diff | mean | std | verdict changes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['cpu_capability']} | {r['threads']} | {r['off_1pct']} of {args.n} | {r['max_rel']:.2g} | "
              f"{r['mean']:.4g} | {r['std']:.4g} | {r['verdict_changes']} of {r['queries']} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
