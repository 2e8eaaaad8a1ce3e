"""Train a 64x64 RGB GAN of the colour tier on the clip-art data (emoji + Tux Paint stamps).

    python -m ronan.train.gan64 --name dcgan64-clipart --arch dcgan64 --seed 0
    python -m ronan.train.gan64 --name dcgan64-clipart-seed1 --arch dcgan64 --seed 1
    python -m ronan.train.gan64 --name upgan64-clipart --arch upgan64 --seed 0
    python -m ronan.train.gan64 --name dcgan64-clipart-ft --arch dcgan64 --seed 2 \
        --init-from dcgan64-clipart --iters 300

Non-saturating GAN loss, Adam (lr 2e-4, betas 0.5/0.999), batch 64, DCGAN-64 discriminator
(width 32), random flips and shifts of the training pictures (``rgb_data.augment``).
``--init-from NAME`` starts from a bundled model's generator weights (and trains a fresh
discriminator briefly first, ``--d-warmup`` steps): the fine-tuned *derivative* case.
Weights go to assets/models/NAME/ with a model card.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..models.gan64 import DCGAN64, ResGAN64, UpsampleGAN64, dcgan64_encoder_layers
from .common import ASSETS, save_model, seed_everything
from .rgb_data import augment, clipart_dataset

ARCHS = {"dcgan64": DCGAN64, "upgan64": UpsampleGAN64, "resgan64": ResGAN64}
DATA = {
    "dataset": "colour emoji (Debian fonts-noto-color-emoji, CBDT bitmaps, SIL OFL) and clip-art stamps "
    "(Debian tuxpaint-stamps-default, GPL), composited over white, fitted into 64x64",
    "split": "train: the ~90% of pictures whose name hash is not in the test split (ronan/train/rgb_data.py)",
}


class Discriminator64(nn.Module):
    """DCGAN-64 discriminator (training only): 64x64 image in [-1, 1] -> logit."""

    def __init__(self, base: int = 32, channels: int = 3):
        super().__init__()
        b = base
        self.net = nn.Sequential(*dcgan64_encoder_layers(channels, b), nn.Conv2d(8 * b, 1, 4, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def _init_weights(m: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--arch", choices=list(ARCHS), default="dcgan64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iters", type=int, default=8000, help="generator steps (default 8000)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--latent-dim", type=int, default=None, help="default: the architecture's")
    p.add_argument("--base", type=int, default=None, help="default: the architecture's")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--init-from", default=None, help="bundled model whose generator weights start the training")
    p.add_argument("--d-warmup", type=int, default=200, help="discriminator-only steps with --init-from")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device of the training (default cpu; random draws stay "
        "on the CPU, so the data order and inputs do not depend on it)",
    )
    p.add_argument("--preview", default=None, help="folder for a sample grid every 1000 steps (optional)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    gen = seed_everything(args.seed)
    x, names = clipart_dataset("train")
    print(f"{len(x)} training pictures", flush=True)
    config = {k: v for k, v in {"latent_dim": args.latent_dim, "base": args.base}.items() if v is not None}
    g = ARCHS[args.arch](**config)
    config = {"latent_dim": g.latent_dim, "base": g.base, "channels": 3, "image_size": 64}
    net: nn.Module = g.net  # type: ignore[assignment]  # every architecture's network is a module
    d = Discriminator64()
    net.apply(_init_weights)
    d.apply(_init_weights)
    if args.init_from:
        state = load_file(str(ASSETS / args.init_from / "model.safetensors"))
        g.load_state_dict(state, strict=True)
    device = torch.device(args.device)
    g.to(device)
    d.to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr, betas=(0.5, 0.999))
    ones, zeros = torch.ones(args.batch, device=device), torch.zeros(args.batch, device=device)
    t0 = time.time()
    warm = args.d_warmup if args.init_from else 0
    for it in range(warm + args.iters):
        idx = torch.randint(0, len(x), (args.batch,), generator=gen)
        real = (augment(x[idx], gen) * 2 - 1).to(device)
        z = torch.randn(args.batch, g.latent_dim, generator=gen).to(device)
        net.train(it >= warm)
        fake = g.raw(z)
        loss_d = F.binary_cross_entropy_with_logits(d(real), ones) + F.binary_cross_entropy_with_logits(
            d(fake.detach()), zeros
        )
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if it >= warm:
            loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        if (it + 1) % 250 == 0:
            print(
                f"step {it + 1}/{warm + args.iters}: loss_d {loss_d.item():.3f} "
                f"loss_g {loss_g.item() if it >= warm else float('nan'):.3f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
        if args.preview and (it + 1) % 1000 == 0:
            _preview(g, args.preview, it + 1)
    g.to("cpu").freeze()
    extra = {
        "seed": args.seed,
        "iterations": args.iters,
        "batch": args.batch,
        "optimizer": f"Adam lr {args.lr:g} betas (0.5, 0.999)",
        "loss": "non-saturating GAN",
        "augmentation": "random horizontal flips, shifts up to 4 px",
        "seconds": round(time.time() - t0, 1),
        "init_from": args.init_from,
        "discriminator_warmup": warm or None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
    }
    save_model(
        g,
        args.name,
        config=config,
        data=DATA,
        extra=extra,
        preprocessing="centre-crop to square, Lanczos resize to 64x64, RGB, values in [0, 1]",
    )


def _preview(g, folder: str, step: int) -> None:
    from pathlib import Path

    from torchvision.utils import save_image

    was = g.net.training
    g.net.eval()
    with torch.no_grad():
        z = torch.randn(64, g.latent_dim, generator=torch.Generator().manual_seed(0))
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_image(g.generate(z), f"{folder}/step{step:06d}.png", nrow=8)
    g.net.train(was)


if __name__ == "__main__":
    main()
