"""Convolutional VAE: the decoder is the generator, the encoder gives a starting point."""

from __future__ import annotations

import torch
from torch import nn

from .base import Generator
from .dcgan import deconv_decoder


class Encoder(nn.Module):
    """Image -> (mu, logvar), both ``Tensor[B, latent_dim]``."""

    def __init__(self, latent_dim: int, base: int, channels: int, image_size: int):
        super().__init__()
        s = image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(channels, base, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(base, 2 * base, 4, 2, 1),
            nn.BatchNorm2d(2 * base),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.mu = nn.Linear(2 * base * s * s, latent_dim)
        self.logvar = nn.Linear(2 * base * s * s, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mu(h), self.logvar(h)


class VAE(Generator):
    """Convolutional VAE; ``generate`` is the decoder, ``encode`` the encoder mean.

    Args:
        latent_dim (int): size of z (default 16).
        base (int): channel width of encoder and decoder (default 32).
        channels (int): image channels (default 1).
        image_size (int): image side (default 28).
    """

    family = "vae"

    def __init__(self, latent_dim: int = 16, base: int = 32, channels: int = 1, image_size: int = 28):
        super().__init__()
        self.latent_dim, self.channels, self.image_size = latent_dim, channels, image_size
        self.input_shape = (latent_dim,)
        self.encoder = Encoder(latent_dim, base, channels, image_size)
        self.decoder = deconv_decoder(latent_dim, base, channels, image_size)

    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.decoder(inputs)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mu, _ = self.encoder(images.to(self.device))
        return mu
