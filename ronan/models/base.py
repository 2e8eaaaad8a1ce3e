"""The ``Generator`` interface every model adapter implements.

A generator maps an *input* tensor (latent code, noise, latent plus fixed condition...)
to an image batch ``Tensor[B, C, H, W]`` with values in ``[0, 1]``. RONAN only ever
optimises the input, so adapters are frozen: eval mode (BatchNorm uses its running
statistics, dropout is off) and no parameter requires a gradient.
"""

from __future__ import annotations

import torch
from PIL import Image

from ..images import to_model_tensor


class Generator(torch.nn.Module):
    """Base class of all model adapters.

    Attributes:
        name (str): registry name, e.g. ``"dcgan-fmnist"``.
        family (str): architecture family, e.g. ``"dcgan"``.
        channels (int): 1 (grayscale) or 3 (RGB).
        image_size (int): side of the square images the model makes, in pixels.
        input_shape (tuple[int, ...]): shape of one input, without the batch dimension.
        weights_sha256 (str | None): SHA-256 of the weights file the model was loaded from.
        default_reference (str | None): name of the model's default reference model for
            calibration (Eq. 2), set from its card; None: the catalogue's, else no calibration.
        cuda_graphs (bool): replay the Adam steps from CUDA graphs on a GPU (:mod:`ronan.graphs`);
            default False, True for the hub UNets whose steps the host's kernel launches bound.
        start_settings (dict | None): how this model's start network is trained, as
            :class:`ronan.starts.StartSettings` fields that differ from the defaults (set from its
            card's ``learned_start``); None: the defaults.
        default_preset (str | None): the inversion preset used when none is asked for (set from
            its card's ``preset``; :func:`ronan.preset_names.preset_name`); None: ``"fast"``.
    """

    name: str = "generator"
    family: str = "generic"
    channels: int = 1
    image_size: int = 28
    input_shape: tuple[int, ...] = (1,)
    weights_sha256: str | None = None
    default_reference: str | None = None
    cuda_graphs: bool = False
    start_settings: dict | None = None
    default_preset: str | None = None

    def freeze(self) -> Generator:
        """Put the model in eval mode and stop gradients to its parameters. Returns self."""
        self.eval()
        self.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> Generator:
        """Adapters stay in eval mode: RONAN's generator is the eval-mode function."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (CPU for a model without parameters)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # ----------------------------------------------------------------- inputs
    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` inputs from the model's input distribution (default: standard normal).

        Args:
            n (int): number of inputs, >= 1.
            generator (torch.Generator | None): CPU random generator; pass a seeded one
                for reproducible results.

        Returns:
            Tensor[n, *input_shape] (float32, on ``self.device``).
        """
        z = torch.randn((n, *self.input_shape), generator=generator)
        return z.to(self.device)

    def expand_restarts(self, restarts: int) -> int:
        """Rows per image that :meth:`initial_inputs` makes for ``restarts`` (default: same)."""
        return restarts

    def initial_inputs(
        self, images: torch.Tensor, restarts: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Starting points of the inversion, image-major: ``expand_restarts(restarts)`` per image.

        Every image gets the same random starting points (drawn once from ``generator``),
        so inverting images one by one or in one batch gives the same result. Adapters
        with an encoder replace restart 0 by the encoder's estimate.

        Args:
            images (Tensor[B, C, H, W]): target images in [0, 1].
            restarts (int): starting points per image, >= 1.
            generator (torch.Generator | None): seeded CPU random generator.

        Returns:
            Tensor[B * R, *input_shape] with ``R = expand_restarts(restarts)``; rows
            ``i*R ... i*R+R-1`` belong to image ``i``.
        """
        starts = self.sample_inputs(restarts, generator)
        inputs = starts.repeat(images.shape[0], *([1] * len(self.input_shape)))
        encoded = self.encode(images)
        if encoded is not None:
            inputs[::restarts] = encoded.to(inputs.dtype)
        return inputs

    def inversion_options(self) -> dict:
        """Adapter options that change inversion results (part of the calibration key); default {}."""
        return {}

    def input_gradient_mask(self) -> torch.Tensor | None:
        """Mask (broadcastable to one input) of the input entries the inversion optimises.

        ``None`` (the default) optimises every entry; conditional models return 0 on the
        condition so that it stays fixed during one inversion.
        """
        return None

    # ------------------------------------------------------------- generation
    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        """Images ``Tensor[B, C, H, W]`` in [0, 1] for ``inputs``; differentiable w.r.t. inputs."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # nn.Module protocol
        return self.generate(inputs)

    def encode(self, images: torch.Tensor) -> torch.Tensor | None:
        """Optional encoder estimate of the inputs of ``images`` (default: ``None``)."""
        return None

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Convert a loaded user image to this model's domain: ``Tensor[C, H, W]`` in [0, 1].

        Default: centre-crop to a square, resize to ``image_size`` (Lanczos), convert to
        grayscale or RGB by ``channels``. See :func:`ronan.images.to_model_tensor`.
        """
        return to_model_tensor(image, self.image_size, self.channels)

    def describe(self) -> dict:
        """Short JSON-serialisable description of the loaded model."""
        return {
            "name": self.name,
            "family": self.family,
            "channels": self.channels,
            "resolution": self.image_size,
            "input_shape": list(self.input_shape),
            "weights_sha256": self.weights_sha256,
        }
