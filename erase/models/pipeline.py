"""A class-conditional sampling pipeline with classifier-free guidance, in diffusers' contract.

diffusers has no class-conditional DDPM pipeline for UNet2DModel, so this is the one we ship. It drives
any denoiser that takes `class_labels` (a UNet2DModel with class embeddings or the seed repos' UNet of
erase/models/ddpm_seed.py, registered as `unet`, or a DiTTransformer2DModel, registered as `transformer`),
optionally in the latent space of a VAE (images are decoded with the VAE's scaling factor, as DiTPipeline
does). A denoiser with learned sigma (DiT: twice the input channels out) contributes its epsilon half.
`ClassConditionalPipeline.from_pretrained(run/model)` loads our run folders.

Guidance has two forms in the literature, and a denoiser's config says which one its `guidance_scale` means
(`guidance_form`, default "standard"): diffusers' eps(null) + s * (eps(c) - eps(null)), and Ho & Salimans'
(1 + w) * eps(c) - w * eps(null), which SalUn's DDPM code uses at w = 2 (s = 1 + w).
"""
from __future__ import annotations

from typing import Sequence

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor


def seeded_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per sample: a sample depends on its own seed, not on how the batch was cut."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def epsilon_part(prediction: torch.Tensor, channels: int) -> torch.Tensor:
    """The epsilon channels of a denoiser output: learned-sigma models (2 x channels out, as DiT) put epsilon
    first and the variance interpolation second; DiT's training code takes the first half for the MSE."""
    if prediction.shape[1] == 2 * channels:
        return prediction[:, :channels]
    return prediction


# guidance_form -> what guidance_scale means
GUIDANCE_FORMS = {"standard": "eps(null) + s * (eps(c) - eps(null)); s = 1: no guidance",
                  "1+w": "(1 + w) * eps(c) - w * eps(null); w = 0: no guidance"}


def guidance_form(denoiser) -> str:
    return getattr(denoiser.config, "guidance_form", "standard")


def unguided(scale: float, form: str = "standard") -> bool:
    """True when the scale asks for the conditional prediction alone (no null branch needed)."""
    return scale == (0.0 if form == "1+w" else 1.0)


def guide(eps_cond: torch.Tensor, eps_null: torch.Tensor, scale: float, form: str = "standard") -> torch.Tensor:
    """Classifier-free guidance in the denoiser's own form (GUIDANCE_FORMS)."""
    if form == "1+w":
        return (1 + scale) * eps_cond - scale * eps_null
    if form != "standard":
        raise ValueError(f"unknown guidance_form {form!r}; known: {sorted(GUIDANCE_FORMS)}")
    return eps_null + scale * (eps_cond - eps_null)


def null_class_of(denoiser) -> int:
    """The class id of the unconditional branch: the extra, last embedding of either denoiser."""
    if hasattr(denoiser, "null_class"):  # families that name it themselves (ddpm-seed: a learned null vector)
        return int(denoiser.null_class)
    config = denoiser.config
    if getattr(config, "num_embeds_ada_norm", None) is not None:  # DiT: table of K + 1, null = K
        return int(config.num_embeds_ada_norm)
    return int(config.num_class_embeds) - 1


class ClassConditionalPipeline(DiffusionPipeline):
    """Sample images of given class ids; guidance uses the null class id (the last embedding)."""

    model_cpu_offload_seq = "transformer->unet->vae"
    _optional_components = ["unet", "transformer", "vae"]

    def __init__(self, scheduler, unet=None, transformer=None, vae=None):
        super().__init__()
        if (unet is None) == (transformer is None):
            raise ValueError("ClassConditionalPipeline needs exactly one denoiser: unet or transformer")
        self.register_modules(unet=unet, transformer=transformer, vae=vae, scheduler=scheduler)

    @property
    def denoiser(self):
        return self.unet if self.unet is not None else self.transformer

    @property
    def null_class(self) -> int:
        return null_class_of(self.denoiser)

    def epsilon(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        timesteps = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])  # DiT wants one per sample
        out = self.denoiser(x, timesteps, class_labels=labels).sample
        return epsilon_part(out, x.shape[1])

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, guidance_scale: float):
        """Guided epsilon in the denoiser's guidance form; no guidance needs no null branch."""
        form = guidance_form(self.denoiser)
        if unguided(guidance_scale, form):
            return self.epsilon(x, t, labels)
        null = torch.full_like(labels, self.null_class)
        eps = self.epsilon(torch.cat([x, x]), t, torch.cat([labels, null]))
        eps_cond, eps_null = eps.chunk(2)
        return guide(eps_cond, eps_null, guidance_scale, form)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Denoised samples (latents when a VAE is present) -> images in [0, 1]."""
        if self.vae is not None:
            x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        return (x / 2 + 0.5).clamp(0, 1)

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
        denoiser = self.denoiser
        labels = torch.as_tensor(class_labels, dtype=torch.long, device=self.device).reshape(-1)
        config = denoiser.config
        shape = (len(labels), config.in_channels, config.sample_size, config.sample_size)
        x = randn_tensor(shape, generator=generator, device=self.device, dtype=denoiser.dtype)
        x = x * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_input = self.scheduler.scale_model_input(x, t)
            eps = self.predict_noise(model_input, t, labels, guidance_scale)
            x = self.scheduler.step(eps, t, x, eta=eta, generator=generator).prev_sample
        return image_output(self, self.decode(x), output_type, return_dict)


def image_output(pipeline: DiffusionPipeline, images: torch.Tensor, output_type: str, return_dict: bool):
    """Images in [0, 1] as diffusers pipelines return them: tensors ("pt"), numpy ("np") or PIL."""
    if output_type == "pt":
        result = images
    elif output_type == "np":
        result = images.cpu().permute(0, 2, 3, 1).float().numpy()
    else:
        result = pipeline.numpy_to_pil(images.cpu().permute(0, 2, 3, 1).float().numpy())
    if not return_dict:
        return (result,)
    return ImagePipelineOutput(images=result)
