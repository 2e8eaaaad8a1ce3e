"""Speed, side by side with the paper's loop, on the same images in one process.

    python benchmarks/bench_speed.py [--quick] [--json] [--json-out FILE] [--model dcgan-fmnist] [--repeats 3]
    python benchmarks/bench_speed.py --model dcgan64-clipart --n-paper 6 --n-batch 40

(a) "paper": the procedure as the paper's public code runs it — one image at a time, Adam lr
    0.1, 1500 steps, one restart, the generator's weights left requiring gradients (so every
    backward pass also computes weight gradients), on the inspected and on the reference model;
    decisions use the belonging distribution built with the "paper" preset.
(b) "ours": this project's default attribution (``attribute_batch``, default preset).

Reports seconds per image for one query (both inversions + test), throughput for a batch
(the paper's code handles one image per run, so its batch throughput is 1 / its per-image
time), agreement and accuracy of the decisions (half belonging, half real test images), the
ratios (a)/(b), and the engine's efficiency: the time raw forward+backward passes of the
generator need for the same work (the same number of rows at every step: early stopping shrinks
the batch as rows finish) over the time the inversion took (its Adam phase: the efficiency run
leaves out the Levenberg-Marquardt refinement, whose cost is in the timings above).

Timings of "ours" are repeated ``--repeats`` times (default 3) and the median is reported; the
paper's loop, 10-100x slower, runs once. The CPU model, its vector instruction set and the thread
count are printed with the figures (:func:`ronan.provenance.environment`): ratios measured on one
machine are not a promise for another, so RESULTS.md records them per machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ronan.attribution import attribute_batch  # noqa: E402
from ronan.calibration import calibrate_losses, get_distribution  # noqa: E402
from ronan.generation import as_uploads, generate_pil  # noqa: E402
from ronan.images import load_image  # noqa: E402
from ronan.inversion import DEFAULT_PRESET, invert, resolve_settings  # noqa: E402
from ronan.models.registry import default_reference, load_model  # noqa: E402
from ronan.provenance import environment  # noqa: E402
from ronan.models.registry import FAMILIES, read_card, weights_path  # noqa: E402
from ronan.stats import grubbs_test  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


def real_test_folder(model) -> Path:
    """Held-out real images of the model's tier: fmnist-test (28x28) or clipart-test (64x64)."""
    return SAMPLES / ("fmnist-test" if model.image_size == 28 else "clipart-test")


def unfrozen_copy(name: str):
    """The model as the paper's code holds it: eval mode, but weights requiring gradients."""
    from safetensors.torch import load_file

    card = read_card(name)
    m = FAMILIES[card["family"]](**card["config"])
    m.load_state_dict(load_file(str(weights_path(name)[0])))
    m.eval()
    for p in m.parameters():
        p.requires_grad_(True)
    return m


def paper_invert(model, image: torch.Tensor, seed: int) -> float:
    """The public code's loop for one image: Adam lr 0.1, 1500 steps, 1 restart, min over steps."""
    g = torch.Generator().manual_seed(seed)
    z = model.sample_inputs(1, g).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    best = float("inf")
    for _ in range(1500):
        loss = torch.nn.functional.mse_loss(model.generate(z), image[None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = min(best, loss.item())
    return best


def raw_step_seconds(model, batch: int, steps: int = 20) -> float:
    """Seconds of one forward+backward pass of ``model`` on ``batch`` rows (no optimiser, no bookkeeping)."""
    z = model.sample_inputs(batch, torch.Generator().manual_seed(0)).requires_grad_(True)
    target = torch.rand(batch, model.channels, model.image_size, model.image_size)
    for i in range(steps + 5):
        if i == 5:
            t0 = time.perf_counter()
        loss = (model.generate(z) - target).pow(2).flatten(1).mean(1).sum()
        z.grad = None
        loss.backward()
    return (time.perf_counter() - t0) / steps


def raw_seconds(model, active_per_step: list[int]) -> float:
    """Raw forward+backward time for a run with ``active_per_step[t]`` rows at step t.

    Measured at batch sizes 1, 2, 4, ... and interpolated linearly in between.
    """
    sizes = sorted({1, max(active_per_step)} | {2 ** k for k in range(1, 12) if 2 ** k < max(active_per_step)})
    table = {b: raw_step_seconds(model, b) for b in sizes}
    total = 0.0
    for a in active_per_step:
        if a <= 0:
            continue
        hi = min(b for b in sizes if b >= a)
        lo = max((b for b in sizes if b <= a), default=hi)
        w = 0.0 if hi == lo else (a - lo) / (hi - lo)
        total += (1 - w) * table[lo] + w * table[hi]
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dcgan-fmnist")
    p.add_argument("--quick", action="store_true", help="few images; finishes in under a minute")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of text")
    p.add_argument("--json-out", help="also write the JSON figures to this file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--preset", default=None, help="our preset (default: the default preset)")
    p.add_argument("--repeats", type=int, default=3, help="timings of ours repeated; median reported (default 3)")
    p.add_argument("--n-paper", type=int, default=None, help="images through the paper loop (default 20; quick 2)")
    p.add_argument("--n-batch", type=int, default=None, help="images in our batch (default 100; quick 20)")
    p.add_argument("--breakdown", action="store_true",
                   help="also time, on 2 images, the paper's loop with frozen weights and the paper preset in our "
                        "engine (where the speed-up comes from)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    n_paper = args.n_paper or (2 if args.quick else 20)    # images through the slow paper loop (half belonging)
    n_batch = args.n_batch or (20 if args.quick else 100)  # images in our batch
    name, ref_name = args.model, default_reference(args.model)
    model, ref = load_model(name), load_model(ref_name)
    half = n_batch // 2
    images = as_uploads(generate_pil(model, half, 2024), name) + [
        load_image(f) for f in sorted(real_test_folder(model).glob("*.png"))[:half]]
    truth = [True] * half + [False] * half
    attribute_batch(images[:1], name, preset=args.preset)  # warm-up: models, caches, allocator

    # (b) ours: one query at a time, then the whole batch
    pick = list(range(n_paper // 2)) + list(range(half, half + n_paper - n_paper // 2))
    singles, batches = [], []
    for _ in range(max(args.repeats, 1)):
        t0 = time.perf_counter()
        ours_single = [attribute_batch([images[i]], name, preset=args.preset)[0] for i in pick]
        singles.append((time.perf_counter() - t0) / len(pick))
        t0 = time.perf_counter()
        ours_batch = attribute_batch(images, name, preset=args.preset)
        batches.append((time.perf_counter() - t0) / len(images))
    ours_s, ours_batch_s = statistics.median(singles), statistics.median(batches)
    differ = [{"image": images[i].name, "single": [s.verdict, s.loss, s.reference_loss],
               "batch": [ours_batch[i].verdict, ours_batch[i].loss, ours_batch[i].reference_loss]}
              for s, i in zip(ours_single, pick) if s.verdict != ours_batch[i].verdict]
    max_rel = max(abs(s.loss - ours_batch[i].loss) / max(ours_batch[i].loss, 1e-30) for s, i in zip(ours_single, pick))

    # (a) the paper's loop, same images
    pm, pr = unfrozen_copy(name), unfrozen_copy(ref_name)
    dist = get_distribution(model, ref, settings=resolve_settings("paper"), build=True)
    paper_verdicts = []
    t0 = time.perf_counter()
    for k, i in enumerate(pick):
        x = model.preprocess(images[i].image)
        a, b = paper_invert(pm, x, k), paper_invert(pr, ref.preprocess(images[i].image), k)
        cal = float(calibrate_losses(torch.tensor([a]), torch.tensor([b]))[0])
        paper_verdicts.append(grubbs_test(cal, dist.mean, dist.std, dist.n).belonging)
    paper_s = (time.perf_counter() - t0) / len(pick)

    breakdown = {}
    if args.breakdown:  # the same paper loop with frozen weights; then the paper preset in our engine
        two = pick[:1] + pick[-1:]
        t0 = time.perf_counter()
        for k, i in enumerate(two):
            paper_invert(model, model.preprocess(images[i].image), k)
            paper_invert(ref, ref.preprocess(images[i].image), k)
        breakdown["paper_loop_frozen_s_per_image"] = (time.perf_counter() - t0) / len(two)
        t0 = time.perf_counter()
        for i in two:
            attribute_batch([images[i]], name, preset="paper")
        breakdown["ours_paper_preset_single_s_per_image"] = (time.perf_counter() - t0) / len(two)

    # engine efficiency: the model's inversion of the whole batch vs raw passes on the same rows
    settings = replace(resolve_settings(args.preset, model=model), refine_steps=0)
    if model.expand_restarts(settings.restarts) != 1:
        raise SystemExit("the efficiency figure assumes one row per image (e.g. dcgan-fmnist)")
    x = torch.stack([model.preprocess(li.image) for li in images])
    res = invert(model, x, settings=settings)
    active = [int((res.image_steps >= t).sum()) for t in range(res.steps_run + 1)]
    raw = raw_seconds(model, active)
    engine = sum(active) / res.seconds

    ours_pick = [ours_batch[i].belonging for i in pick]
    out = {
        "model": name, "reference": ref_name, "threads": torch.get_num_threads(), "environment": environment(),
        "repeats": len(singles), "ours_single_runs": singles, "ours_batch_runs": batches,
        "paper_s_per_image": paper_s, "ours_s_per_image": ours_s, "single_ratio": paper_s / ours_s,
        "ours_batch_s_per_image": ours_batch_s, "batch_ratio": paper_s / ours_batch_s,
        "paper_accuracy": sum(v == truth[i] for v, i in zip(paper_verdicts, pick)) / len(pick),
        "ours_accuracy": sum(r.belonging == t for r, t in zip(ours_batch, truth)) / len(images),
        "ours_accuracy_on_paper_images": sum(v == truth[i] for v, i in zip(ours_pick, pick)) / len(pick),
        "agreement": sum(a == b for a, b in zip(paper_verdicts, ours_pick)) / len(pick),
        "single_and_batch_agree": not differ, "single_batch_differences": differ,
        "single_batch_max_rel_loss_diff": max_rel,
        "n_paper_images": len(pick), "n_batch_images": len(images),
        "engine_row_steps_per_s": engine, "raw_row_steps_per_s": sum(active) / raw, "efficiency": raw / res.seconds,
        "mean_steps_per_image": sum(active) / len(images),
        "batch_steps_belonging": sum(r.steps_run for r in ours_batch[:half]) / half,
        "batch_steps_real": sum(r.steps_run for r in ours_batch[half:]) / (len(images) - half),
        "batch_steps_reference": sum(r.reference_steps_run for r in ours_batch) / len(images),
        "ours_preset": args.preset or DEFAULT_PRESET, "ours_settings": resolve_settings(args.preset, model=model).to_dict(),
        **breakdown,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return
    env = out["environment"]
    print(f"model {name}, reference {ref_name}, {out['threads']} threads, CPU {env['cpu']} "
          f"({env['cpu_capability']} kernels); ours: preset {out['ours_preset']}, median of {len(singles)} runs")
    print(f"(a) paper loop : {paper_s:7.2f} s/image (one image at a time), accuracy {out['paper_accuracy']:.2f} "
          f"on {len(pick)} images")
    print(f"(b) ours single: {ours_s:7.3f} s/image   -> {out['single_ratio']:.1f}x faster")
    print(f"(b) ours batch : {ours_batch_s:7.3f} s/image over {len(images)} images -> {out['batch_ratio']:.1f}x faster, "
          f"accuracy {out['ours_accuracy']:.2f}")
    print(f"decision agreement (a) vs (b): {out['agreement']:.2f}; single == batch verdicts: {out['single_and_batch_agree']} "
          f"(largest relative loss difference {max_rel:.2g}){''.join(f'; differs: {d}' for d in differ)}")
    print(f"steps per image in the batch run: {out['batch_steps_belonging']:.0f} belonging, "
          f"{out['batch_steps_real']:.0f} real (inspected model), {out['batch_steps_reference']:.0f} reference model "
          f"(the paper: 1500 each)")
    for key, v in breakdown.items():
        print(f"breakdown: {key} = {v:.2f} s")
    print(f"engine efficiency: {engine:.0f} row-steps/s ({out['mean_steps_per_image']:.0f} steps per image on average, "
          f"early stopping); raw fwd+bwd on the same rows {out['raw_row_steps_per_s']:.0f} -> {out['efficiency']:.0%}")


if __name__ == "__main__":
    main()
