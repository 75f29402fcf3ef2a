"""Text-to-image family in the Stable Diffusion layout: unet, text_encoder, tokenizer, scheduler, optional vae.

- Stable Diffusion v1.x (`sd-v1-4`): loaded from a local diffusers folder or the local Hugging Face cache,
  never from the hub, every component strictly from safetensors. Absent weights are one clear error.
- `--init random`: the recipe's architecture with random weights; `--tiny` swaps in a two-block stack
  modelled on diffusers' own test components (get_dummy_components), so the whole path runs in seconds.
- t2i-shapes: the same layout without a VAE (pixel space, TextToImagePipeline).

The denoising task sees this family through `TextAdapter`: images -> frozen VAE latents (times the VAE's
scaling factor), prompts -> frozen text-encoder embeddings, the empty prompt as the unconditional branch.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

from erase.config import Recipe
from erase.errors import UserError
from erase.models import GeneratorBundle
from erase.models.io import check_state_dict, load_config_json, load_strict, read_state_dict
from erase.models.t2i_pipeline import TextToImagePipeline
from erase.models.tiny_sd import TINY_ARCHITECTURE, TINY_OVERLAY, apply_tiny  # noqa: F401  (re-exported)
from erase.models.tokenizer import build_tokenizer, load_tokenizer, token_ids
from erase.tasks.denoising import DenoiserAdapter, vae_latents

# Buffers that older transformers saved and newer ones recompute: the only tolerated extra tensors.
RECOMPUTED_BUFFERS = ("text_model.embeddings.position_ids",)


class TextAdapter(DenoiserAdapter):
    """Prompts (token ids in the batch) through the frozen text encoder; images through the frozen VAE."""

    def __init__(self, text_encoder, tokenizer, vae=None):
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self._empty: torch.Tensor | None = None

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return token_ids(self.tokenizer, prompts)

    def frozen_modules(self) -> list[torch.nn.Module]:
        """The frozen parts that shape every generated image: cache keys hash them with the denoiser."""
        return [self.text_encoder] + ([self.vae] if self.vae is not None else [])

    @torch.no_grad()
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        self.text_encoder.to(ids.device)
        return self.text_encoder(ids)[0]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return vae_latents(self.vae, images)

    def condition(self, batch) -> torch.Tensor:
        return self.embed(batch["input_ids"])

    def relabel_condition(self, batch) -> torch.Tensor:
        """The anchor prompt of each forget sample (e.g. 'a photo of a person wearing clothes')."""
        if "anchor_ids" not in batch:
            raise UserError("the relabel objective needs an anchor prompt for each forget prompt")
        return self.embed(batch["anchor_ids"])

    def esd_conditions(self, batch, prompts: str = "concept"):
        """The concept is the concept prompt when the forget data carry it (the original ESD: "nudity"), else
        the batch's prompts. prompts="forget"/"anchor" train the forget prompts themselves, each with its
        neutral prompt: the prompt without the concept, or the prompt's anchor."""
        concept = self.embed(batch["concept_ids"]) if "concept_ids" in batch else self.condition(batch)
        if prompts == "concept":
            return concept, None, concept
        key = {"forget": "neutral_ids", "anchor": "anchor_ids"}[prompts]
        if key not in batch:
            raise UserError(f"esd_prompts={prompts} needs a {key[:-4]} prompt for each forget prompt")
        return self.condition(batch), self.embed(batch[key]), concept

    def null_condition(self, cond: torch.Tensor) -> torch.Tensor:
        if self._empty is None or self._empty.device != cond.device:
            self._empty = self.embed(self.tokenize([""]).to(cond.device))
        return self._empty.expand(cond.shape[0], -1, -1).to(cond.dtype)

    def predict(self, model, x_t, t, cond):
        return model(x_t, t, encoder_hidden_states=cond).sample


# -- building and loading ----------------------------------------------------------------------------------
def latent_factor(architecture: dict[str, Any]) -> int:
    vae = architecture.get("vae")
    return 2 ** (len(vae["block_out_channels"]) - 1) if vae else 1


def build_scheduler(recipe: Recipe) -> DDIMScheduler:
    return DDIMScheduler(**recipe.scheduler)


def build_components(recipe: Recipe) -> dict[str, Any]:
    """Random weights (from the current torch seed) of the recipe's architecture; tokenizer from the
    project's vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    arch = recipe.architecture
    max_length = int(arch.get("max_length", 77))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "tokenizer", max_length)
    text_config = {"vocab_size": len(tokenizer), "max_position_embeddings": max_length,
                   "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id, **arch["text_encoder"]}
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    factor = latent_factor(arch)
    unet_config = {"sample_size": recipe.resolution // factor,
                   "cross_attention_dim": text_config["hidden_size"], **arch["unet"]}
    unet = UNet2DConditionModel(**unet_config)
    vae = AutoencoderKL(sample_size=recipe.resolution, **arch["vae"]) if arch.get("vae") else None
    return {"unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "vae": vae,
            "scheduler": build_scheduler(recipe)}


def text_encoder_from_config(folder: Path):
    """transformers' CLIPTextModel built from the folder's config.json (random weights)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = load_config_json(folder)
    try:
        return CLIPTextModel(CLIPTextConfig(**{k: v for k, v in config.items() if not k.startswith("_")}))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{folder}/config.json does not describe a CLIPTextModel: {exc}") from exc


def load_text_encoder(folder: Path):
    """transformers' CLIPTextModel from config.json + safetensors, strictly (as erase.models.io)."""
    model = text_encoder_from_config(folder)
    state = read_state_dict(folder)
    expected = model.state_dict()
    for key in RECOMPUTED_BUFFERS:
        if key in state and key not in expected:
            state.pop(key)
    check_state_dict(model, state, folder)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_scheduler(folder: Path) -> DDIMScheduler:
    """Any saved scheduler config (SD ships PNDM) as DDIM, the sampler the recipes specify."""
    config = folder / "scheduler" / "scheduler_config.json"
    if not config.is_file():
        raise UserError(f"{folder} has no scheduler/scheduler_config.json; it is not a complete pipeline folder")
    return DDIMScheduler.from_config(DDIMScheduler.load_config(str(config.parent)))


def load_components(folder: Path, config_only: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every component, strictly. `config_only`: models built from their config.json alone (random weights),
    for a caller that replaces their weights (erase import), which spares reading them."""
    for part in ("unet", "text_encoder", "tokenizer"):
        if not (folder / part).is_dir():
            raise UserError(f"{folder} has no {part}/ folder: expected a diffusers Stable Diffusion folder "
                            f"(unet, text_encoder, tokenizer, scheduler, vae)")

    def model(cls, part: str):
        if part not in config_only:
            return load_strict(cls, folder / part)
        try:
            return cls.from_config(load_config_json(folder / part))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{folder / part}/config.json does not describe a {cls.__name__}: {exc}") from exc

    text_encoder = "text_encoder" in config_only
    return {"unet": model(UNet2DConditionModel, "unet"),
            "text_encoder": (text_encoder_from_config if text_encoder else load_text_encoder)(folder / "text_encoder"),
            "tokenizer": load_tokenizer(folder / "tokenizer"),
            "vae": model(AutoencoderKL, "vae") if (folder / "vae").is_dir() else None,
            "scheduler": load_scheduler(folder)}


def make_pipeline(parts: dict[str, Any]):
    if parts["vae"] is not None:
        pipeline = StableDiffusionPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"],
                                           tokenizer=parts["tokenizer"], unet=parts["unet"],
                                           scheduler=parts["scheduler"], safety_checker=None,
                                           feature_extractor=None, requires_safety_checker=False)
    else:
        pipeline = TextToImagePipeline(unet=parts["unet"], text_encoder=parts["text_encoder"],
                                       tokenizer=parts["tokenizer"], scheduler=parts["scheduler"])
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def load(recipe: Recipe, folder: Path | None) -> GeneratorBundle:
    """`folder=None` builds random weights from the recipe (--init random)."""
    return bundle_from_parts(recipe, build_components(recipe) if folder is None else load_components(folder))


def bundle_from_parts(recipe: Recipe, parts: dict[str, Any]) -> GeneratorBundle:
    pipeline = make_pipeline(parts)
    adapter = TextAdapter(parts["text_encoder"], parts["tokenizer"], parts["vae"])
    noise_scheduler = DDPMScheduler.from_config(parts["scheduler"].config)
    return GeneratorBundle(recipe, pipeline, "unet", adapter, noise_scheduler)
