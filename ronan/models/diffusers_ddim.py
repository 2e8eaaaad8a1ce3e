"""DDPM UNets (google/ddpm-cifar10-32) sampled by a few-step deterministic DDIM, with gradients.

The paper inverts DDIM on CIFAR-10. Generation is diffusers' ``DDIMPipeline`` (eta 0)
written out: ``x_T = z``; for each of ``ddim_steps`` timesteps ``x = scheduler.step(unet(x, t),
t, x, eta=0).prev_sample``; image ``clamp(x / 2 + 0.5, 0, 1)``. The scheduler is
``DDIMScheduler.from_config(<the repo's scheduler config>)``, as the pipeline converts it,
so images equal the pipeline's for the same noise. Each UNet call is gradient-checkpointed
(``torch.utils.checkpoint``): memory holds one activation set plus ``ddim_steps`` latents,
whatever the number of steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint

from .base import Generator
from .snapshot import component_path, diffusers_kwargs


class DDIMGenerator(Generator):
    """Deterministic DDIM generator over a diffusers ``UNet2DModel``.

    Args:
        unet (diffusers.UNet2DModel): noise-prediction UNet.
        scheduler_config (dict): the repo's scheduler config (DDPM or DDIM).
        ddim_steps (int): sampler steps (default 10).
        checkpointing (bool): recompute each UNet call in backward (default True).
    """

    unet_timesteps: torch.Tensor  # buffer (registered in __init__)

    family = "ddim"
    cuda_graphs = True  # a UNet at batch 1: its steps are bound by the host's kernel launches

    def __init__(self, unet, scheduler_config: dict, ddim_steps: int = 10, checkpointing: bool = True):
        super().__init__()
        from diffusers import DDIMScheduler

        if not 1 <= int(ddim_steps) <= 1000:
            raise ValueError(f"ddim_steps option must be in 1..1000, not {ddim_steps}")
        self.unet = unet
        self.scheduler = DDIMScheduler.from_config(scheduler_config)
        self.scheduler.set_timesteps(int(ddim_steps))
        self.ddim_steps = int(ddim_steps)
        self.checkpointing = checkpointing
        cfg = unet.config
        self.channels = int(cfg.in_channels)
        size = cfg.sample_size
        self.image_size = int(size if isinstance(size, int) else size[0])
        self.input_shape = (self.channels, self.image_size, self.image_size)
        # the UNet's timesteps on the model's device: no host copy inside generate (CUDA graphs)
        self.register_buffer("unet_timesteps", self.scheduler.timesteps.clone(), persistent=False)

    @classmethod
    def from_folder(cls, root: Path, **options) -> DDIMGenerator:
        from diffusers import UNet2DModel

        unet_dir, sched_dir = component_path(root, "unet"), component_path(root, "scheduler")
        unet = UNet2DModel.from_pretrained(str(unet_dir), **diffusers_kwargs())
        return cls(unet, json.loads((sched_dir / "scheduler_config.json").read_text()), **options)

    def inversion_options(self) -> dict:
        return {"ddim_steps": self.ddim_steps, "sampler": "ddim-eta0"}

    def _eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, return_dict=False)[0]

    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs.to(self.unet.dtype)
        for t, t_unet in zip(self.scheduler.timesteps, self.unet_timesteps):
            if self.checkpointing and torch.is_grad_enabled():  # no randomness in the UNet: no RNG state kept
                eps = checkpoint(self._eps, x, t_unet, use_reentrant=False, preserve_rng_state=False)
            else:
                eps = self._eps(x, t_unet)
            x = self.scheduler.step(eps, t, x, eta=0.0).prev_sample
        return (x / 2 + 0.5).clamp(0, 1).float()
