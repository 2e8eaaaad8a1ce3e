"""Train a convolutional VAE on Fashion-MNIST or, for the reference model, on photo crops.

    python -m ronan.train.vae --name vae-fmnist --data fmnist --seed 0
    python -m ronan.train.vae --name ref-photos --data photos --seed 0 --latent-dim 64 --base 48 --beta 0.05

Loss: binary cross-entropy reconstruction + beta x KL divergence (beta 1 by default; the
reference model uses a small beta so that its decoder covers more images); Adam lr 1e-3,
batch 128.
The reference model is trained on 60,000 grayscale crops of natural photos (Debian
packages mate-backgrounds and ukui-wallpapers), i.e. on data disjoint from Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ..models.vae import VAE
from .common import load_fashion_mnist, load_photo_crops, photo_files, save_model, seed_everything


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--data", choices=["fmnist", "photos"], default="fmnist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (default 1: a plain VAE)")
    p.add_argument("--crops", type=int, default=60000, help="photo crops (with --data photos)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    gen = seed_everything(args.seed)
    data: dict[str, str | list[str]]
    if args.data == "fmnist":
        x, _ = load_fashion_mnist("train")
        data = {
            "dataset": "Fashion-MNIST (Debian package dataset-fashion-mnist, MIT licence)",
            "split": "train (60,000 images)",
        }
    else:
        x = load_photo_crops(args.crops, seed=args.seed)
        data = {
            "dataset": "grayscale 28x28 crops of natural photos (Debian packages mate-backgrounds, ukui-wallpapers)",
            "split": f"{args.crops} random crops at 4 scales, random flips, half intensity-inverted",
            "photos": [p.name for p in photo_files()],
        }
    config = {"latent_dim": args.latent_dim, "base": args.base, "channels": 1, "image_size": 28}
    vae = VAE(**config)
    nets = torch.nn.ModuleList([vae.encoder, vae.decoder])
    opt = torch.optim.Adam(nets.parameters(), lr=1e-3)
    t0 = time.time()
    for epoch in range(args.epochs):
        nets.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x) - args.batch + 1, args.batch):
            real = x[perm[i : i + args.batch]]
            mu, logvar = vae.encoder(real)
            z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
            recon = vae.decoder(z)
            rec = F.binary_cross_entropy(recon, real, reduction="sum") / len(real)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(real)
            loss = rec + args.beta * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(real)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / len(x):.2f} ({time.time() - t0:.0f} s)", flush=True)
    vae.freeze()
    extra = {
        "seed": args.seed,
        "epochs": args.epochs,
        "batch": args.batch,
        "optimizer": "Adam lr 1e-3",
        "loss": f"BCE reconstruction + {args.beta} x KL",
        "seconds": round(time.time() - t0, 1),
    }
    save_model(vae, args.name, config=config, data=data, extra=extra)


if __name__ == "__main__":
    main()
