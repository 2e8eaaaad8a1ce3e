"""Train a DCGAN (or, with ``--conditional``, a class-conditional GAN) on Fashion-MNIST.

    python -m ronan.train.gan --name dcgan-fmnist --seed 0
    python -m ronan.train.gan --name dcgan-fmnist-seed1 --seed 1
    python -m ronan.train.gan --name cgan-fmnist --seed 0 --conditional

Non-saturating GAN loss, Adam (lr 2e-4, betas 0.5/0.999), batch 128, on the 60,000
training images. Takes a few minutes on 2 CPU cores. Weights go to assets/models/NAME/.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ..models.cgan import ConditionalGAN
from ..models.dcgan import DCGAN, Discriminator
from .common import FMNIST_CLASSES, load_fashion_mnist, save_model, seed_everything


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conditional", action="store_true")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    gen = seed_everything(args.seed)
    x, y = load_fashion_mnist("train")
    config = {"latent_dim": args.latent_dim, "base": args.base, "channels": 1, "image_size": 28}
    g: ConditionalGAN | DCGAN
    if args.conditional:
        config["n_classes"] = 10
        g = ConditionalGAN(**config)
    else:
        g = DCGAN(**config)
    d = Discriminator(base=args.base, n_classes=10 if args.conditional else 0)
    net = g.net  # train the raw network: the adapter itself always stays in eval mode
    opt_g = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones = torch.ones(args.batch)
    t0 = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x), generator=gen)
        net.train()
        for i in range(0, len(x) - args.batch + 1, args.batch):
            idx = perm[i : i + args.batch]
            real, labels = x[idx], y[idx]
            z = torch.randn(args.batch, args.latent_dim, generator=gen)
            if args.conditional:
                fake_labels = torch.randint(0, 10, (args.batch,), generator=gen)
                inp = torch.cat([z, F.one_hot(fake_labels, 10).float()], 1)
            else:
                fake_labels, labels = None, None  # type: ignore[assignment]  # unconditional: no labels
                inp = z
            fake = net(inp)
            loss_d = F.binary_cross_entropy_with_logits(d(real, labels), ones) + F.binary_cross_entropy_with_logits(
                d(fake.detach(), fake_labels), 0 * ones
            )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(d(fake, fake_labels), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f} "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )
    g.freeze()
    data = {
        "dataset": "Fashion-MNIST (Debian package dataset-fashion-mnist, MIT licence)",
        "split": "train (60,000 images)",
        "classes": FMNIST_CLASSES if args.conditional else None,
    }
    extra = {
        "seed": args.seed,
        "epochs": args.epochs,
        "batch": args.batch,
        "optimizer": "Adam lr 2e-4 betas (0.5, 0.999)",
        "loss": "non-saturating GAN" + (" with projection discriminator" if args.conditional else ""),
        "seconds": round(time.time() - t0, 1),
    }
    save_model(g, args.name, config=config, data=data, extra=extra)


if __name__ == "__main__":
    main()
