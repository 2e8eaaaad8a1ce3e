"""Class-conditional GAN (the paper's class-conditional case).

The input is ``[z, label_logits]``: the generator sees ``softmax(label_logits)`` concatenated
to ``z``. Sampling uses one-hot logits scaled by ``LABEL_SCALE`` (a one-hot label to float
precision). The class of an uploaded image is unknown; two strategies are offered:

* ``"all"`` (default): every class is tried and the label stays fixed during the inversion;
  the preset's restarts are spread over the classes (``ceil(restarts / n_classes)`` random
  starts per class, so at least one), and the minimum over classes and starts counts.
* ``"relaxed"``: one run per restart that optimises the label logits too, from uniform.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Generator
from .dcgan import deconv_decoder

LABEL_SCALE = 20.0
"""Logit of the chosen class in a sampled input; softmax gives it weight 1 - 2e-8."""


class ConditionalGAN(Generator):
    """Class-conditional DCGAN generator.

    Args:
        latent_dim (int): size of z (default 32).
        n_classes (int): number of classes (default 10).
        base (int): channel width (default 32).
        channels (int): image channels (default 1).
        image_size (int): image side (default 28).
        class_search (str): ``"all"`` or ``"relaxed"`` (see module docstring).
    """

    family = "cgan"

    def __init__(
        self,
        latent_dim: int = 32,
        n_classes: int = 10,
        base: int = 32,
        channels: int = 1,
        image_size: int = 28,
        class_search: str = "all",
    ):
        super().__init__()
        if class_search not in ("all", "relaxed"):
            raise ValueError(f"class_search must be 'all' or 'relaxed', not {class_search!r}")
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.channels, self.image_size = channels, image_size
        self.class_search = class_search
        self.input_shape = (latent_dim + n_classes,)
        self.net = deconv_decoder(latent_dim + n_classes, base, channels, image_size)

    def make_inputs(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Inputs for latent codes ``z[B, latent_dim]`` and integer class ``labels[B]``."""
        logits = F.one_hot(labels.long(), self.n_classes).to(z) * LABEL_SCALE
        return torch.cat([z, logits], dim=1)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn((n, self.latent_dim), generator=generator)
        labels = torch.randint(0, self.n_classes, (n,), generator=generator)
        return self.make_inputs(z, labels).to(self.device)

    def expand_restarts(self, restarts: int) -> int:
        if self.class_search == "all":
            return self.n_classes * math.ceil(restarts / self.n_classes)
        return restarts

    def initial_inputs(self, images, restarts, generator=None):
        rows = self.expand_restarts(restarts)
        z = torch.randn((rows, self.latent_dim), generator=generator)
        if self.class_search == "all":
            labels = torch.arange(self.n_classes).repeat_interleave(rows // self.n_classes)
            starts = self.make_inputs(z, labels)
        else:
            starts = torch.cat([z, torch.zeros(rows, self.n_classes)], dim=1)
        return starts.repeat(images.shape[0], 1).to(self.device)

    def inversion_options(self) -> dict:
        return {"class_search": self.class_search}

    def input_gradient_mask(self) -> torch.Tensor | None:
        if self.class_search == "relaxed":
            return None
        mask = torch.ones(self.input_shape, device=self.device)
        mask[self.latent_dim :] = 0
        return mask

    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        z, logits = inputs[:, : self.latent_dim], inputs[:, self.latent_dim :]
        return self.net(torch.cat([z, logits.softmax(dim=1)], dim=1))
