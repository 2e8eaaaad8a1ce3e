"""A small generator defined outside RONAN: the worked example of the README section
"Check images against your own model".

It stands for *your* model: any ``torch.nn.Module`` that maps a latent vector to images.
This one maps ``z ~ N(0, I)`` of 16 dimensions to a 28x28 grayscale image in [-1, 1] (tanh).

    python examples/my_generator.py my_generator.safetensors     # random init (seed 0), saved

In practice you would save your trained weights (``safetensors.torch.save_file(
model.state_dict(), ...)`` or ``torch.save(model.state_dict(), ...)``).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


class MyGenerator(nn.Module):
    """MLP generator: ``z[B, latent_dim] -> images[B, channels, size, size]`` in [-1, 1]."""

    def __init__(self, latent_dim: int = 16, hidden: int = 128, size: int = 28, channels: int = 1):
        super().__init__()
        self.shape = (channels, size, size)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, channels * size * size), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


def build(latent_dim: int = 16, hidden: int = 128, size: int = 28, channels: int = 1) -> MyGenerator:
    """The factory a model card names (``my_generator:build``): returns the untrained module."""
    return MyGenerator(latent_dim, hidden, size, channels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="weights file to write (.safetensors)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    model = build()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
