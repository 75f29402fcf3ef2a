"""A pixel-space text-to-image pipeline with Stable Diffusion's contract (prompt, guidance, generator).

StableDiffusionPipeline needs a VAE. The embedded t2i-shapes model works on 16x16 pixels directly (a VAE
would have to be trained first and saves nothing at that size), so it ships with this pipeline: the same
components as SD minus the VAE, loadable with `TextToImagePipeline.from_pretrained(run/model)`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from erase.models.pipeline import image_output
from erase.models.tokenizer import token_ids


class TextToImagePipeline(DiffusionPipeline):
    """UNet2DConditionModel + CLIP text encoder/tokenizer + scheduler, sampling in pixel space."""

    model_cpu_offload_seq = "text_encoder->unet"

    def __init__(self, unet, text_encoder, tokenizer, scheduler):
        super().__init__()
        self.register_modules(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.text_encoder(token_ids(self.tokenizer, prompts).to(self.device))[0]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        num_inference_steps: int = 25,
        guidance_scale: float = 3.0,
        negative_prompt: str | Sequence[str] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        negative = negative_prompt if negative_prompt is not None else ""
        negatives = [negative] * len(prompts) if isinstance(negative, str) else list(negative)
        cond = self.encode_prompt(prompts)
        uncond = self.encode_prompt(negatives)
        config = self.unet.config
        shape = (len(prompts), config.in_channels, config.sample_size, config.sample_size)
        x = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)
        x = x * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_input = self.scheduler.scale_model_input(x, t)
            if guidance_scale == 1.0:
                eps = self.unet(model_input, t, encoder_hidden_states=cond).sample
            else:
                eps = self.unet(torch.cat([model_input] * 2), t,
                                encoder_hidden_states=torch.cat([cond, uncond])).sample
                eps_cond, eps_uncond = eps.chunk(2)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            x = self.scheduler.step(eps, t, x, eta=eta, generator=generator).prev_sample
        return image_output(self, (x / 2 + 0.5).clamp(0, 1), output_type, return_dict)
