"""Train the 64x64 RGB reference model: a VAE on natural-photo crops (disjoint from the clip-art).

    python -m ronan.train.vae64 --name ref-photos64 --seed 0

Loss: mean-squared reconstruction (sum over pixels) + beta x KL (beta 0.5 by default, so that
the decoder covers many images); Adam lr 1e-3, batch 64; 40,000 RGB crops of the Debian
wallpaper photos (``rgb_data.photo_crops_rgb``).
"""

from __future__ import annotations

import argparse
import time

import torch

from ..models.gan64 import VAE64
from .common import save_model, seed_everything
from .rgb_data import photo_crops_rgb, wallpaper_files


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iters", type=int, default=6000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--latent-dim", type=int, default=128)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--crops", type=int, default=40000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    gen = seed_everything(args.seed)
    x = photo_crops_rgb(args.crops, seed=args.seed)
    print(f"{len(x)} photo crops", flush=True)
    vae = VAE64(latent_dim=args.latent_dim, base=args.base)
    nets = torch.nn.ModuleList([vae.encoder, vae.decoder])
    opt = torch.optim.Adam(nets.parameters(), lr=1e-3)
    t0 = time.time()
    nets.train()
    for it in range(args.iters):
        real = x[torch.randint(0, len(x), (args.batch,), generator=gen)]
        mu, logvar = vae.encoder(real)
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        recon = (vae.raw(z) + 1) * 0.5
        rec = ((recon - real) ** 2).sum() / len(real) * 50.0  # ~ Gaussian likelihood, sigma 0.1
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(real)
        loss = rec + args.beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (it + 1) % 250 == 0:
            print(
                f"step {it + 1}/{args.iters}: loss {loss.item():.1f} rec {rec.item():.1f} kl {kl.item():.1f} "
                f"({time.time() - t0:.0f} s)",
                flush=True,
            )
    vae.freeze()
    data = {
        "dataset": "64x64 RGB crops of natural photos (Debian packages mate-backgrounds, ukui-wallpapers, "
        "gnome-backgrounds, plasma-workspace-wallpapers)",
        "split": f"{args.crops} random crops at 4 scales, random flips",
        "photos": [f.name for f in wallpaper_files()],
    }
    extra = {
        "seed": args.seed,
        "iterations": args.iters,
        "batch": args.batch,
        "optimizer": "Adam lr 1e-3",
        "loss": f"squared error x 50 + {args.beta} x KL",
        "seconds": round(time.time() - t0, 1),
    }
    config = {"latent_dim": args.latent_dim, "base": args.base, "channels": 3, "image_size": 64}
    save_model(
        vae,
        args.name,
        config=config,
        data=data,
        extra=extra,
        preprocessing="centre-crop to square, Lanczos resize to 64x64, RGB, values in [0, 1]",
    )


if __name__ == "__main__":
    main()
