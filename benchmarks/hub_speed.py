"""Per-image attribution time of the hub models, on full-size random-weight architectures.

Hub weights cannot be downloaded here, and speed does not depend on weight values, so the
published architectures (``benchmarks/hub_configs.json``) are built with random weights and
one inversion step (forward + backward + Adam, through the same adapters as the real
models) is timed on B rows; the per-image time of a preset is then extrapolated:

    seconds/image = steps * (t_step(model, rows) + t_step(reference, rows))

with ``rows`` = the preset's restarts (the relaxed-label consistency model uses one row per
restart). The paper reports 153 s per image for a consistency model on a GPU (Appendix E).

Usage::

    python benchmarks/hub_speed.py                       # CPU, 1 thread, rows 1
    python benchmarks/hub_speed.py --device cuda --rows 1 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

CONFIGS = json.loads((Path(__file__).with_name("hub_configs.json")).read_text())


def build(name: str):
    """Adapter of ``name`` with the full-size architecture and random (seeded) weights."""
    import diffusers

    torch.manual_seed(0)
    if name == "cm-imagenet64":
        from ronan.models.diffusers_consistency import ConsistencyModel
        return ConsistencyModel(diffusers.UNet2DModel(**CONFIGS["cm-imagenet64"]),
                                diffusers.CMStochasticIterativeScheduler())
    if name.startswith("ddpm-cifar10"):
        from ronan.models.diffusers_ddim import DDIMGenerator
        steps = int(name.split("@")[1]) if "@" in name else 10
        return DDIMGenerator(diffusers.UNet2DModel(**CONFIGS["ddpm-cifar10"]), CONFIGS["ddpm-cifar10-scheduler"],
                             ddim_steps=steps)
    if name.startswith("sd2-latent"):  # sd2-latent@256: same architecture at a smaller size
        from ronan.models.diffusers_sd import StableDiffusionGenerator
        size = int(name.split("@")[1]) if "@" in name else 512
        return StableDiffusionGenerator(diffusers.AutoencoderKL(**{**CONFIGS["sd2-vae"], "sample_size": size}),
                                        mode="latent")
    raise SystemExit(f"unknown model {name}")


def time_step(gen, rows: int, repeats: int, device: torch.device, precision: str) -> float:
    """Median seconds of one inversion step (generate + MSE + backward + Adam) on ``rows`` inputs."""
    from ronan.inversion import _autocast

    gen = gen.to(device).freeze()
    target = torch.rand(rows, gen.channels, gen.image_size, gen.image_size, device=device)
    x = torch.randn((rows, *gen.input_shape), generator=torch.Generator().manual_seed(0))
    x = x.to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.1)
    times = []
    for i in range(repeats + 1):  # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with _autocast(device, precision):
            out = gen.generate(x)
        loss = ((out.float() - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def class_strategy(n: int = 6, steps: int = 60, classes: int = 1000) -> None:
    """Measure the unknown-class strategies on a tiny random-weight class-conditional CM.

    Belonging: ``n`` samples of the model (random classes). Non-belonging: ``n`` samples of
    a second model of the same architecture (other weights) and ``n`` real images
    (committed Fashion-MNIST samples, RGB). Strategies: the true class given (an oracle),
    a wrong class given, and the relaxed label (default). Prints mean losses and the AUC of
    "loss separates belonging from non-belonging".
    """
    import diffusers
    import numpy as np
    from PIL import Image

    from ronan.inversion import InversionSettings, invert
    from ronan.models.diffusers_consistency import ConsistencyModel

    def unet(seed):
        torch.manual_seed(seed)
        return diffusers.UNet2DModel(
            sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4, attention_head_dim=8, num_class_embeds=classes)

    sched = diffusers.CMStochasticIterativeScheduler
    relaxed = ConsistencyModel(unet(0), sched()).freeze()
    other = ConsistencyModel(unet(1), sched()).freeze()
    g = torch.Generator().manual_seed(5)
    z = torch.randn(n, 3, 16, 16, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    with torch.no_grad():
        bel = relaxed.generate(relaxed.make_inputs(z, labels))
        oth = other.generate(other.make_inputs(torch.randn(n, 3, 16, 16, generator=g),
                                               torch.randint(0, classes, (n,), generator=g)))
    samples = sorted((Path(__file__).resolve().parents[1] / "assets" / "samples" / "fmnist-test").glob("*.png"))[:n]
    real = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((16, 16)), np.float32) / 255)
                        .permute(2, 0, 1) for f in samples])
    settings = InversionSettings(steps=steps, lr=0.1, restarts=2, plateau_steps=0)  # every step, no early stop

    def auc(pos, neg):
        return float(np.mean([[1.0 if p < q else 0.5 if p == q else 0.0 for q in neg] for p in pos]))

    print(f"unknown-class strategies, tiny CM with {classes} classes, {steps} Adam steps, 2 restarts, "
          f"{n} belonging / {n} other-model / {len(real)} real images")
    for label, true_class in [("true class given (oracle)", True), ("wrong class given", False), ("relaxed label", None)]:
        t0 = time.perf_counter()
        if true_class is None:
            loss_b = invert(relaxed, bel, settings=settings).loss
        else:
            loss_b = []
            for i in range(n):
                c = int(labels[i]) if true_class else (int(labels[i]) + 1) % classes
                fixed = ConsistencyModel(relaxed.unet, sched(), class_label=c)
                loss_b.append(float(invert(fixed, bel[i:i + 1], settings=settings).loss[0]))
            loss_b = torch.tensor(loss_b)
        # non-belonging images have no true class: the fixed-label rows use class 0
        gen_nb = relaxed if true_class is None else ConsistencyModel(relaxed.unet, sched(), class_label=0)
        loss_o = invert(gen_nb, oth, settings=settings).loss
        loss_r = invert(gen_nb, real, settings=settings).loss
        print(f"  {label:26s} belonging {loss_b.mean():.4f}  other model {loss_o.mean():.4f}  "
              f"real {loss_r.mean():.4f}  AUC vs other {auc(loss_b.tolist(), loss_o.tolist()):.2f}  "
              f"AUC vs real {auc(loss_b.tolist(), loss_r.tolist()):.2f}  ({time.perf_counter() - t0:.1f} s)",
              flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cm-imagenet64,ddpm-cifar10",
                   help="comma list of cm-imagenet64, ddpm-cifar10[@ddim_steps], sd2-latent[@size]")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=1, help="rows timed per step (CPU cost ~ linear in rows)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--class-strategy", action="store_true",
                   help="measure the unknown-class strategies on a tiny model instead of timing")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.class_strategy:
        return class_strategy()
    device = torch.device(args.device)
    step = {}
    for name in args.models.split(","):
        gen = build(name)
        n_params = sum(p.numel() for p in gen.parameters()) / 1e6
        t = time_step(gen, args.rows, args.repeats, device, args.precision)
        step[name] = t / args.rows if device.type == "cpu" else t
        print(f"{name:18s} {n_params:7.1f} M params  {gen.image_size}x{gen.image_size}  "
              f"step on {args.rows} row(s): {t:7.2f} s  ({device}, {args.threads} thread(s), {args.precision})",
              flush=True)
        if name.startswith("sd2-latent@"):  # convolutions: cost ~ pixels
            step["sd2-latent"] = step[name] * (512 / gen.image_size) ** 2
            print(f"{'':18s} -> sd2-latent at 512x512 ~ {step['sd2-latent']:.1f} s per row (scaled by pixels)")
        del gen
    # fast: 1 restart, early stopping; ~300 steps per image on the bundled zoo, 1000 at most
    presets = {"fast (~300 steps, early stop)": (300, 1), "fast, cap (1000 steps x 1)": (1000, 1),
               "paper (1500 steps x 1 restart)": (1500, 1)}
    scale = "linear in rows (CPU)" if device.type == "cpu" else f"measured at {args.rows} rows"
    print(f"\nextrapolated seconds per image ({scale}):")
    pairs = [("cm-imagenet64", "ddpm-cifar10"), ("ddpm-cifar10", "cm-imagenet64"), ("sd2-latent", "cm-imagenet64")]
    for model, ref in pairs:
        if model not in step:
            continue
        for label, (steps, rows) in presets.items():
            per_row = step[model] + step.get(ref, 0.0)
            k = rows if device.type == "cpu" else 1
            both = "model + reference" if ref in step else "model only"
            print(f"  {model:14s} {label:32s} {steps * k * per_row:10.0f} s  ({both}; paper: 153 s/image on a GPU)")


if __name__ == "__main__":
    main()
