"""A class-conditional sampling pipeline with classifier-free guidance, in diffusers' contract.

diffusers has no class-conditional DDPM pipeline for UNet2DModel, so this is the one we ship; it works for
any denoiser that takes `class_labels` (UNet2DModel with class embeddings, DiTTransformer2DModel) and an
optional VAE. `ClassConditionalPipeline.from_pretrained(run/model)` loads our run folders.
"""
from __future__ import annotations

from typing import Sequence

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor


def seeded_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per sample: a sample depends on its own seed, not on how the batch was cut."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


class ClassConditionalPipeline(DiffusionPipeline):
    """Sample images of given class ids; guidance uses the last class id as the null class."""

    model_cpu_offload_seq = "unet"

    def __init__(self, unet, scheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @property
    def null_class(self) -> int:
        return int(self.unet.config.num_class_embeds) - 1

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, guidance_scale: float):
        """Guided epsilon: eps(null) + s * (eps(c) - eps(null)); s = 1 needs no null branch."""
        if guidance_scale == 1.0:
            return self.unet(x, t, class_labels=labels).sample
        null = torch.full_like(labels, self.null_class)
        eps = self.unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
        eps_cond, eps_null = eps.chunk(2)
        return eps_null + guidance_scale * (eps_cond - eps_null)

    @torch.no_grad()
    def __call__(
        self,
        class_labels: Sequence[int] | torch.Tensor,
        num_inference_steps: int = 25,
        guidance_scale: float = 3.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        labels = torch.as_tensor(class_labels, dtype=torch.long, device=self.device).reshape(-1)
        config = self.unet.config
        shape = (len(labels), config.in_channels, config.sample_size, config.sample_size)
        x = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)
        x = x * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_input = self.scheduler.scale_model_input(x, t)
            eps = self.predict_noise(model_input, t, labels, guidance_scale)
            x = self.scheduler.step(eps, t, x, eta=eta, generator=generator).prev_sample
        images = (x / 2 + 0.5).clamp(0, 1)
        if output_type == "pt":
            result = images
        elif output_type == "np":
            result = images.cpu().permute(0, 2, 3, 1).float().numpy()
        else:
            result = self.numpy_to_pil(images.cpu().permute(0, 2, 3, 1).float().numpy())
        if not return_dict:
            return (result,)
        return ImagePipelineOutput(images=result)
