"""64x64 RGB generators of the colour tier (the shapes most community GANs have).

* :class:`DCGAN64` — the classic DCGAN-64 generator (Radford et al. 2016): z of
  ``latent_dim`` as a 1x1 map, ConvTranspose 4x4 (stride 1, then stride 2 four times),
  BatchNorm, ReLU, tanh output mapped to [0, 1].
* :class:`UpsampleGAN64` — a second architecture: a linear layer to a 4x4 map, then four
  nearest-neighbour upsamplings each followed by a 3x3 convolution, BatchNorm and ReLU.
* :class:`ResGAN64` — residual generator (SNGAN-style up-blocks with shortcut connections).
* :class:`VAE64` — a convolutional VAE (decoder = DCGAN64 shape; the encoder gives a start).

Inputs are ``z ~ N(0, I)`` of ``latent_dim``; ``generate`` returns ``Tensor[B, 3, 64, 64]`` in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Generator


def dcgan64_decoder(latent_dim: int, base: int, channels: int) -> nn.Sequential:
    """DCGAN-64 decoder ``Tensor[B, latent_dim, 1, 1] -> Tensor[B, channels, 64, 64]`` in [-1, 1]."""
    b = base
    return nn.Sequential(
        nn.ConvTranspose2d(latent_dim, 8 * b, 4, 1, 0, bias=False),
        nn.BatchNorm2d(8 * b),
        nn.ReLU(True),
        nn.ConvTranspose2d(8 * b, 4 * b, 4, 2, 1, bias=False),
        nn.BatchNorm2d(4 * b),
        nn.ReLU(True),
        nn.ConvTranspose2d(4 * b, 2 * b, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * b),
        nn.ReLU(True),
        nn.ConvTranspose2d(2 * b, b, 4, 2, 1, bias=False),
        nn.BatchNorm2d(b),
        nn.ReLU(True),
        nn.ConvTranspose2d(b, channels, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


class _Tanh01(Generator):
    """Common part of the 64x64 generators: ``z -> net -> tanh output mapped to [0, 1]``."""

    image_size = 64

    def _init(self, latent_dim: int, base: int, channels: int, image_size: int) -> None:
        if image_size != 64:
            raise ValueError(f"{type(self).__name__} makes 64x64 images, not {image_size}x{image_size}")
        self.latent_dim, self.base, self.channels, self.image_size = latent_dim, base, channels, image_size
        self.input_shape = (latent_dim,)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        """The network's own output in [-1, 1] (training uses it)."""
        raise NotImplementedError

    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        return (self.raw(inputs) + 1.0) * 0.5


class DCGAN64(_Tanh01):
    """Classic DCGAN-64 generator.

    Args:
        latent_dim (int): size of z (default 100).
        base (int): width ``b``; feature maps have 8b, 4b, 2b, b channels (default 32).
        channels (int): image channels (default 3).
        image_size (int): must be 64.
    """

    family = "dcgan64"

    def __init__(self, latent_dim: int = 100, base: int = 32, channels: int = 3, image_size: int = 64):
        super().__init__()
        self._init(latent_dim, base, channels, image_size)
        self.net = dcgan64_decoder(latent_dim, base, channels)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class UpsampleGAN64(_Tanh01):
    """Linear to 4x4, then (nearest upsample x2, conv 3x3, BatchNorm, ReLU) x 4, conv 3x3, tanh.

    Args:
        latent_dim (int): size of z (default 128).
        base (int): width ``b``; feature maps have 8b, 4b, 2b, b, b channels (default 32).
        channels (int): image channels (default 3).
        image_size (int): must be 64.
    """

    family = "upgan64"

    def __init__(self, latent_dim: int = 128, base: int = 32, channels: int = 3, image_size: int = 64):
        super().__init__()
        self._init(latent_dim, base, channels, image_size)
        b = base
        widths = [8 * b, 4 * b, 2 * b, b, b]
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, widths[0] * 16),
            nn.Unflatten(1, (widths[0], 4, 4)),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
            ]
        layers += [nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class _UpBlock(nn.Module):
    """Residual up-block: BN-ReLU-up-conv3-BN-ReLU-conv3 plus an upsampled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )
        self.skip = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.skip(x)


class ResGAN64(_Tanh01):
    """Residual generator: linear to 4x4, four residual up-blocks, BN-ReLU-conv3-tanh.

    Args:
        latent_dim (int): size of z (default 128).
        base (int): width ``b``; blocks have 8b, 4b, 2b, b, b channels (default 24).
        channels (int): image channels (default 3).
        image_size (int): must be 64.
    """

    family = "resgan64"

    def __init__(self, latent_dim: int = 128, base: int = 24, channels: int = 3, image_size: int = 64):
        super().__init__()
        self._init(latent_dim, base, channels, image_size)
        b = base
        widths = [8 * b, 4 * b, 2 * b, b, b]
        self.net = nn.Sequential(
            nn.Linear(latent_dim, widths[0] * 16),
            nn.Unflatten(1, (widths[0], 4, 4)),
            *[_UpBlock(cin, cout) for cin, cout in zip(widths[:-1], widths[1:])],
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(True),
            nn.Conv2d(widths[-1], channels, 3, 1, 1),
            nn.Tanh(),
        )

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def dcgan64_encoder_layers(channels: int, base: int) -> list[nn.Module]:
    """DCGAN-64's discriminator trunk: 64x64 -> 4x4 with ``8 * base`` channels (4 strided 4x4 convolutions,
    BatchNorm after the first, LeakyReLU 0.2). Shared by :class:`Encoder64` and the GAN trainer's discriminator."""
    b = base
    return [
        nn.Conv2d(channels, b, 4, 2, 1),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(b, 2 * b, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * b),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * b, 4 * b, 4, 2, 1, bias=False),
        nn.BatchNorm2d(4 * b),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(4 * b, 8 * b, 4, 2, 1, bias=False),
        nn.BatchNorm2d(8 * b),
        nn.LeakyReLU(0.2, True),
    ]


class Encoder64(nn.Module):
    """64x64 image -> (mu, logvar): four stride-2 convolutions, then two linear heads."""

    def __init__(self, latent_dim: int, base: int, channels: int):
        super().__init__()
        b = base
        self.features = nn.Sequential(*dcgan64_encoder_layers(channels, b), nn.Flatten())
        self.mu = nn.Linear(8 * b * 16, latent_dim)
        self.logvar = nn.Linear(8 * b * 16, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x * 2.0 - 1.0)
        return self.mu(h), self.logvar(h)


class VAE64(_Tanh01):
    """Convolutional VAE at 64x64; ``generate`` is the DCGAN-64-shaped decoder, ``encode`` the mean.

    Args:
        latent_dim (int): size of z (default 128).
        base (int): width of encoder and decoder (default 32).
        channels (int): image channels (default 3).
        image_size (int): must be 64.
    """

    family = "vae64"

    def __init__(self, latent_dim: int = 128, base: int = 32, channels: int = 3, image_size: int = 64):
        super().__init__()
        self._init(latent_dim, base, channels, image_size)
        self.encoder = Encoder64(latent_dim, base, channels)
        self.decoder = dcgan64_decoder(latent_dim, base, channels)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.view(z.shape[0], -1, 1, 1))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mu, _ = self.encoder(images.to(self.device))
        return mu
