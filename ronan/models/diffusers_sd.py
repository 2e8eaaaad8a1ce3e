"""Stable Diffusion 2 base through diffusers (the paper's case study, Table 6).

Two modes (``mode``):

* ``"latent"`` (registry ``sd2-latent``, fast): the input is the VAE latent ``[4, H/8, W/8]``
  and ``generate`` is the VAE decoder, ``vae.decode(latent / scaling_factor)``; the inversion
  starts from the encoder's estimate ``vae.encode(2x - 1).latent_dist.mean * scaling_factor``
  (restart 0) — the successor method's approach. Belonging samples for calibration are real
  SD samples: ``sample_inputs`` runs the text-conditioned DDIM sampler (no gradients) and
  returns its final latents.
* ``"noise"`` (registry ``sd2-noise``, paper-faithful, slow; GPU): the input is the initial
  noise ``x_T`` and ``generate`` runs the whole ``ddim_steps`` deterministic DDIM sampler with
  classifier-free guidance, each UNet call gradient-checkpointed, then the decoder.

The sampler is ``StableDiffusionPipeline``'s loop with ``DDIMScheduler.from_config(<repo
scheduler config>)`` and eta 0. The prompt is an input (option ``prompt``, default ``""``:
the prompt of an uploaded image is usually unknown); ``guidance_scale`` defaults to 7.5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from .base import Generator
from .snapshot import component_path, diffusers_kwargs


class StableDiffusionGenerator(Generator):
    """Stable Diffusion adapter (see module docstring).

    Args:
        vae (diffusers.AutoencoderKL), unet (diffusers.UNet2DConditionModel | None),
        text_encoder (transformers.CLIPTextModel | None), tokenizer (CLIPTokenizer | None),
        scheduler_config (dict | None): components; the last four are needed by ``"noise"``
            mode and by ``sample_inputs``.
        mode (str): ``"latent"`` (default) or ``"noise"``.
        prompt (str): text prompt (default ``""``).
        guidance_scale (float): classifier-free guidance (default 7.5; <= 1 disables it).
        ddim_steps (int): sampler steps (default 10).
    """

    family = "sd"

    def __init__(
        self,
        vae,
        unet=None,
        text_encoder=None,
        tokenizer=None,
        scheduler_config: dict | None = None,
        mode: str = "latent",
        prompt: str = "",
        guidance_scale: float = 7.5,
        ddim_steps: int = 10,
    ):
        super().__init__()
        if mode not in ("latent", "noise"):
            raise ValueError(f"mode option must be 'latent' or 'noise', not {mode!r}")
        if not 1 <= int(ddim_steps) <= 1000:
            raise ValueError(f"ddim_steps option must be in 1..1000, not {ddim_steps}")
        self.vae, self.unet, self.text_encoder, self.tokenizer = vae, unet, text_encoder, tokenizer
        self.mode, self.prompt = mode, str(prompt)
        self.guidance_scale, self.ddim_steps = float(guidance_scale), int(ddim_steps)
        self.family = f"sd-{mode}"
        self.scaling_factor = float(vae.config.scaling_factor)
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = int(vae.config.latent_channels)
        self.channels = int(vae.config.out_channels)
        if unet is not None:
            size = unet.config.sample_size
            self.latent_size = int(size if isinstance(size, int) else size[0])
        else:
            self.latent_size = int(vae.config.sample_size) // factor
        self.image_size = self.latent_size * factor
        self.input_shape = (self.latent_channels, self.latent_size, self.latent_size)
        self.scheduler: Any = None  # a diffusers DDIMScheduler (noise mode)
        if unet is not None and scheduler_config is not None:
            from diffusers import DDIMScheduler

            # StableDiffusionPipeline's own corrections of outdated scheduler configs
            fixed = {**dict(scheduler_config), "steps_offset": 1, "clip_sample": False}
            self.scheduler = DDIMScheduler.from_config(fixed)
            self.scheduler.set_timesteps(self.ddim_steps)
        if mode == "noise" and (self.scheduler is None or text_encoder is None or tokenizer is None):
            raise ValueError("mode 'noise' needs unet, text_encoder, tokenizer and scheduler")
        self._embeds: torch.Tensor | None = None

    @classmethod
    def from_folder(cls, root: Path, **options) -> StableDiffusionGenerator:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        kw = diffusers_kwargs()
        vae = AutoencoderKL.from_pretrained(str(component_path(root, "vae")), **kw)
        unet = UNet2DConditionModel.from_pretrained(str(component_path(root, "unet")), **kw)
        text_encoder = CLIPTextModel.from_pretrained(
            str(component_path(root, "text_encoder")), use_safetensors=True, local_files_only=True
        )
        tokenizer = CLIPTokenizer.from_pretrained(str(component_path(root, "tokenizer")), local_files_only=True)
        sched = json.loads((component_path(root, "scheduler") / "scheduler_config.json").read_text())
        return cls(vae, unet, text_encoder, tokenizer, sched, **options)

    def inversion_options(self) -> dict:
        # the sampler settings change the belonging samples in both modes
        return {"mode": self.mode, **self.sampling_options()}

    def sampling_options(self) -> dict:
        """Options that change the belonging samples (prompt, guidance, sampler)."""
        return {"prompt": self.prompt, "guidance_scale": self.guidance_scale, "ddim_steps": self.ddim_steps}

    # ------------------------------------------------------------ the sampler
    def prompt_embeds(self) -> torch.Tensor:
        """``[2 or 1, L, D]`` text embeddings: (unconditional, prompt) with guidance, else prompt."""
        if self._embeds is None or self._embeds.device != self.device:
            tok = self.tokenizer
            texts = ["", self.prompt] if self.guidance_scale > 1 else [self.prompt]
            ids = tok(
                texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
            ).input_ids.to(self.device)
            with torch.no_grad():
                self._embeds = self.text_encoder(ids)[0].to(self.unet.dtype)
        return self._embeds

    def _eps(self, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.guidance_scale > 1:
            cond = embeds.repeat_interleave(b, dim=0)  # [uncond]*b then [prompt]*b
            out = self.unet(torch.cat([x, x]), t, encoder_hidden_states=cond, return_dict=False)[0]
            uncond, text = out.chunk(2)
            return uncond + self.guidance_scale * (text - uncond)
        return self.unet(x, t, encoder_hidden_states=embeds.expand(b, -1, -1), return_dict=False)[0]

    def sample_latents(self, noise: torch.Tensor) -> torch.Tensor:
        """Final latents of the DDIM sampler from initial ``noise`` (differentiable, checkpointed)."""
        embeds = self.prompt_embeds()
        x = noise.to(self.unet.dtype) * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            if torch.is_grad_enabled():
                eps = checkpoint(self._eps, x, t, embeds, use_reentrant=False)
            else:
                eps = self._eps(x, t, embeds)
            x = self.scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of VAE latents (differentiable)."""
        x = self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor, return_dict=False)[0]
        return (x / 2 + 0.5).clamp(0, 1).float()

    # ----------------------------------------------------------------- inputs
    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn((n, *self.input_shape), generator=generator).to(self.device)
        if self.mode == "noise":
            return noise
        if self.scheduler is None:
            raise ValueError("sampling SD latents needs the unet, text encoder and scheduler")
        with torch.no_grad():
            return self.sample_latents(noise).float()

    def encode(self, images: torch.Tensor) -> torch.Tensor | None:
        if self.mode != "latent":
            return None
        with torch.no_grad():
            dist = self.vae.encode((images.to(self.device, self.vae.dtype) * 2 - 1), return_dict=False)[0]
            return (dist.mean * self.scaling_factor).float()

    # ------------------------------------------------------------- generation
    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.mode == "latent":
            return self.decode(inputs)
        return self.decode(self.sample_latents(inputs))
