"""OpenAI consistency models through diffusers (the paper's Consistency Model rows).

Generation is diffusers' one-step ``ConsistencyModelPipeline`` written out so that gradients
reach the input noise ``z ~ N(0, I)`` (the pipeline's ``latents`` before scaling):

    x_T    = z * init_noise_sigma                     (sigma_max, 80)
    model  = unet(x_T / sqrt(sigma^2 + sigma_data^2), t, class_labels)
    x_0    = clamp(c_out * model + c_skip * x_T, -1, 1)   (boundary-condition scalings)
    image  = clamp(x_0 / 2 + 0.5, 0, 1)

with ``sigma = scheduler.sigmas[0]``, ``t = scheduler.timesteps[0]`` and ``c_skip, c_out =
scheduler.get_scalings_for_boundary_condition(sigma)`` taken from the scheduler itself after
``set_timesteps(1)``, so the scaling matches the pipeline exactly (tested to float precision).

Class-conditional models (ImageNet 64x64) and the unknown class of an uploaded image
(``class_search``):

* ``"relaxed"`` (default): the input is ``[z.flatten(), label_logits]`` and the UNet's class
  embedding is ``softmax(label_logits) @ E`` (a convex mixture of class embeddings); the
  logits are optimised with z, from uniform. Sampled inputs use one-hot logits scaled by
  ``LABEL_SCALE`` (softmax = one-hot in float32), so samples equal the pipeline's.
* an integer ``class_label``: the label is given by the user and fixed (the pipeline's exact
  embedding lookup); the input is z only.

Trying every class (as the bundled cGAN does) would cost 1000 inversions per image; the
relaxed label costs one. See benchmarks/RESULTS.md ("Hub models") for the measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .base import Generator
from .snapshot import component_path, diffusers_kwargs

LABEL_SCALE = 50.0
"""Logit of the chosen class in a sampled input: softmax gives the others < 1e-21 in total."""


class SoftClassEmbedding(torch.nn.Module):
    """``nn.Embedding`` that also takes class probabilities ``[B, K]`` (float) -> ``probs @ weight``."""

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        self.embedding = embedding

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.is_floating_point():
            return labels.to(self.embedding.weight.dtype) @ self.embedding.weight
        return self.embedding(labels)


class ConsistencyModel(Generator):
    """One-step consistency-model generator.

    Args:
        unet (diffusers.UNet2DModel): the consistency model.
        scheduler (diffusers.CMStochasticIterativeScheduler): its scheduler (config used as is).
        class_search (str): ``"relaxed"`` (default) for class-conditional models; ignored
            for unconditional ones or when ``class_label`` is given.
        class_label (int | None): fixed class of the inverted images (user-given), or None.
    """

    sigma: torch.Tensor  # buffers (registered in __init__)
    timestep: torch.Tensor
    c_skip: torch.Tensor
    c_out: torch.Tensor

    family = "consistency"
    cuda_graphs = True  # a UNet at batch 1: its steps are bound by the host's kernel launches

    def __init__(self, unet, scheduler, class_search: str = "relaxed", class_label: int | None = None):
        super().__init__()
        if class_search not in ("relaxed",):
            raise ValueError(f"class_search option must be 'relaxed' (or give class_label), not {class_search!r}")
        self.unet = unet
        cfg = unet.config
        self.channels = int(cfg.in_channels)
        size = cfg.sample_size
        self.image_size = int(size if isinstance(size, int) else size[0])
        self.n_classes = int(cfg.num_class_embeds) if cfg.num_class_embeds is not None else 0
        if class_label is not None and not 0 <= int(class_label) < max(self.n_classes, 1):
            raise ValueError(f"class_label option must be in 0..{self.n_classes - 1}, not {class_label}")
        if class_label is not None and self.n_classes == 0:
            raise ValueError("class_label option given for an unconditional model")
        self.class_label = None if class_label is None else int(class_label)
        self.class_search = class_search
        self.relaxed = self.n_classes > 0 and self.class_label is None
        if self.relaxed:
            unet.class_embedding = SoftClassEmbedding(unet.class_embedding)
        self.z_shape = (self.channels, self.image_size, self.image_size)
        self.z_numel = self.channels * self.image_size**2
        self.input_shape = (self.z_numel + self.n_classes,) if self.relaxed else self.z_shape
        # the pipeline's one-step schedule, from the scheduler's own functions
        scheduler.set_timesteps(1)
        sigma = scheduler.sigmas[0]
        c_skip, c_out = scheduler.get_scalings_for_boundary_condition(sigma)
        self.register_buffer("sigma", torch.as_tensor(sigma).float().clone(), persistent=False)
        self.register_buffer("timestep", torch.as_tensor(scheduler.timesteps[0]).clone(), persistent=False)
        self.register_buffer("c_skip", torch.as_tensor(c_skip).clone(), persistent=False)
        self.register_buffer("c_out", torch.as_tensor(c_out).clone(), persistent=False)
        self.init_noise_sigma = float(scheduler.init_noise_sigma)
        self.sigma_data = float(scheduler.config.sigma_data)
        self.clip_denoised = bool(scheduler.config.clip_denoised)

    @classmethod
    def from_folder(cls, root: Path, **options) -> ConsistencyModel:
        """Load UNet (safetensors only) and scheduler from a diffusers folder."""
        from diffusers import CMStochasticIterativeScheduler, UNet2DModel

        unet_dir, sched_dir = component_path(root, "unet"), component_path(root, "scheduler")
        unet = UNet2DModel.from_pretrained(str(unet_dir), **diffusers_kwargs())
        scheduler = CMStochasticIterativeScheduler.from_config(
            json.loads((sched_dir / "scheduler_config.json").read_text())
        )
        return cls(unet, scheduler, **options)

    # ----------------------------------------------------------------- inputs
    def make_inputs(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs for noise ``z[B, C, H, W]`` and integer ``labels[B]`` (relaxed mode only)."""
        if not self.relaxed:
            return z
        assert labels is not None, "relaxed inputs need class labels"
        logits = torch.nn.functional.one_hot(labels.long(), self.n_classes).to(z) * LABEL_SCALE
        return torch.cat([z.flatten(1), logits], dim=1)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn((n, *self.z_shape), generator=generator)
        labels = torch.randint(0, self.n_classes, (n,), generator=generator) if self.relaxed else None
        return self.make_inputs(z, labels).to(self.device)

    def initial_inputs(self, images, restarts, generator=None):
        z = torch.randn((restarts, *self.z_shape), generator=generator)
        starts = torch.cat([z.flatten(1), torch.zeros(restarts, self.n_classes)], 1) if self.relaxed else z
        return starts.repeat(images.shape[0], *([1] * (starts.dim() - 1))).to(self.device)

    def inversion_options(self) -> dict:
        if self.n_classes == 0:
            return {}
        return {"class_label": self.class_label} if self.class_label is not None else {"class_search": "relaxed"}

    # ------------------------------------------------------------- generation
    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        b = inputs.shape[0]
        labels: torch.Tensor | None
        if self.relaxed:
            z = inputs[:, : self.z_numel].reshape(b, *self.z_shape)
            labels = inputs[:, self.z_numel :].float().softmax(dim=1)
        else:
            z = inputs
            labels = (
                torch.full((b,), self.class_label, dtype=torch.long, device=inputs.device)
                if self.class_label is not None
                else None
            )
        dtype = self.unet.dtype
        sample = z.to(dtype) * self.init_noise_sigma
        scaled = sample / ((self.sigma**2 + self.sigma_data**2) ** 0.5)
        out = self.unet(scaled, self.timestep, class_labels=labels, return_dict=False)[0]
        denoised = self.c_out * out + self.c_skip * sample
        if self.clip_denoised:
            denoised = denoised.clamp(-1, 1)
        return (denoised / 2 + 0.5).clamp(0, 1).float()
