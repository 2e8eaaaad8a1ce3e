"""DCGAN: an unconditional convolutional generator (the paper's DCGAN case)."""

from __future__ import annotations

import torch
from torch import nn

from .base import Generator


def deconv_decoder(in_dim: int, base: int, channels: int, image_size: int) -> nn.Sequential:
    """DCGAN-style decoder: ``Linear -> [2b, s/4, s/4] -> ConvT(2b, b) -> ConvT(b, C) -> sigmoid``.

    Args:
        in_dim (int): size of the input vector.
        base (int): channel width ``b`` (the first feature map has ``2b`` channels).
        channels (int): output channels, 1 or 3.
        image_size (int): output side, a multiple of 4 (28 for Fashion-MNIST).

    Returns:
        nn.Sequential mapping ``Tensor[B, in_dim]`` to ``Tensor[B, channels, s, s]`` in [0, 1].
    """
    s = image_size // 4
    return nn.Sequential(
        nn.Linear(in_dim, 2 * base * s * s),
        nn.Unflatten(1, (2 * base, s, s)),
        nn.BatchNorm2d(2 * base),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(2 * base, base, 4, 2, 1),
        nn.BatchNorm2d(base),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(base, channels, 4, 2, 1),
        nn.Sigmoid(),
    )


class DCGAN(Generator):
    """Unconditional DCGAN generator; input ``z ~ N(0, I)`` of size ``latent_dim``.

    Args:
        latent_dim (int): size of z (default 32).
        base (int): channel width (default 32).
        channels (int): image channels (default 1).
        image_size (int): image side (default 28).
    """

    family = "dcgan"

    def __init__(self, latent_dim: int = 32, base: int = 32, channels: int = 1, image_size: int = 28):
        super().__init__()
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.input_shape = (latent_dim,)
        self.net = deconv_decoder(latent_dim, base, channels, image_size)

    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)


class Discriminator(nn.Module):
    """DCGAN discriminator used by training only (never shipped): image -> logit."""

    def __init__(self, base: int = 32, channels: int = 1, image_size: int = 28, n_classes: int = 0):
        super().__init__()
        s = image_size // 4
        self.n_classes = n_classes
        self.features = nn.Sequential(
            nn.Conv2d(channels, base, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(base, 2 * base, 4, 2, 1),
            nn.BatchNorm2d(2 * base),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * base * s * s, 1)
        self.embed = nn.Embedding(n_classes, 2 * base * s * s) if n_classes else None
        if self.embed is not None:  # start the projection term near 0: N(0, 1) rows give logits of ~50
            nn.init.normal_(self.embed.weight, std=0.01)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.head(h).squeeze(1)
        if self.embed is not None and labels is not None:  # projection discriminator
            out = out + (self.embed(labels) * h).sum(1)
        return out
