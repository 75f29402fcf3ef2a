"""DiT family: diffusers DiTTransformer2DModel, class-label conditioned (null label K for guidance), in pixel
space or in the latent space of an AutoencoderKL.

Folders use DiTPipeline's layout (transformer/, scheduler/, and vae/ for latent models), so a downloaded
DiT-XL/2 folder loads as it is; our saved models add model_index.json for ClassConditionalPipeline.
Recipe `architecture` holds DiTTransformer2DModel settings; its optional `vae` entry holds AutoencoderKL
settings (used for --init random; pretrained latent models load vae/ from the folder).
"""
from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel
from diffusers.models.embeddings import LabelEmbedding

from erase.config import Recipe
from erase.errors import UserError
from erase.models import GeneratorBundle
from erase.models.ddpm import build_scheduler, load_scheduler
from erase.models.io import load_strict
from erase.models.pipeline import ClassConditionalPipeline
from erase.tasks.denoising import ClassLabelAdapter


def transformer_settings(recipe: Recipe) -> dict:
    """DiTTransformer2DModel kwargs; pixel models default to the recipe's image size and channels."""
    settings = {k: v for k, v in recipe.architecture.items() if k != "vae"}
    settings.setdefault("in_channels", recipe.channels)
    settings.setdefault("sample_size", recipe.resolution)
    return {**settings, "num_embeds_ada_norm": recipe.num_classes}


def without_internal_label_dropout(transformer: DiTTransformer2DModel) -> DiTTransformer2DModel:
    """diffusers' DiT drops labels itself in train mode (10 %, independently in every block, from the global
    RNG). The denoising task already drops labels for CFG, and relabel/ESD targets need the label they name,
    so the model's own dropout is switched off; the null row of the label table stays (it is id K)."""
    for module in transformer.modules():
        if isinstance(module, LabelEmbedding):
            module.dropout_prob = 0.0
    return transformer


def build(recipe: Recipe):
    transformer = DiTTransformer2DModel(**transformer_settings(recipe))
    vae_settings = recipe.architecture.get("vae")
    vae = AutoencoderKL(**vae_settings) if vae_settings else None
    return transformer, vae, build_scheduler(recipe)


def load_folder(recipe: Recipe, folder: Path):
    transformer = load_strict(DiTTransformer2DModel, folder / "transformer")
    vae = load_strict(AutoencoderKL, folder / "vae") if (folder / "vae").is_dir() else None
    if recipe.architecture.get("vae") and vae is None:
        raise UserError(f"{folder} has no vae/ folder; {recipe.name} is a latent model and needs its VAE")
    embeds = transformer.config.num_embeds_ada_norm
    if embeds != recipe.num_classes:
        raise UserError(f"{folder}/transformer is conditioned on {embeds} classes; {recipe.name} has "
                        f"{recipe.num_classes}")
    return transformer, vae, load_scheduler(folder)


def load(recipe: Recipe, folder: Path | None) -> GeneratorBundle:
    """`folder=None` builds random weights from the recipe (--init random)."""
    return bundle_from_parts(recipe, *(build(recipe) if folder is None else load_folder(recipe, folder)))


def bundle_from_parts(recipe: Recipe, transformer: DiTTransformer2DModel, vae, scheduler) -> GeneratorBundle:
    without_internal_label_dropout(transformer)
    if vae is not None:
        vae.requires_grad_(False).eval()
    pipeline = ClassConditionalPipeline(scheduler=scheduler, transformer=transformer, vae=vae)
    pipeline.set_progress_bar_config(disable=True)
    noise_scheduler = DDPMScheduler.from_config(scheduler.config)
    return GeneratorBundle(recipe, pipeline, "transformer", ClassLabelAdapter(recipe.num_classes, vae),
                           noise_scheduler)
