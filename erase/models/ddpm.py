"""Class-conditional DDPM family: diffusers UNet2DModel with class embeddings (last id = null class)."""
from __future__ import annotations

from pathlib import Path

from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from erase.config import Recipe
from erase.errors import UserError
from erase.models import GeneratorBundle
from erase.models.io import load_strict
from erase.models.pipeline import ClassConditionalPipeline
from erase.tasks.denoising import ClassLabelAdapter


def build_unet(recipe: Recipe) -> UNet2DModel:
    return UNet2DModel(
        sample_size=recipe.resolution, in_channels=recipe.channels, out_channels=recipe.channels,
        num_class_embeds=recipe.num_classes + 1, **recipe.architecture,
    )


def build_scheduler(recipe: Recipe) -> DDIMScheduler:
    return DDIMScheduler(**recipe.scheduler)


def load_scheduler(folder: Path) -> DDIMScheduler:
    config = folder / "scheduler" / "scheduler_config.json"
    if not config.is_file():
        raise UserError(f"{folder} has no scheduler/scheduler_config.json; it is not a complete pipeline folder")
    return DDIMScheduler.from_config(DDIMScheduler.load_config(str(config.parent)))


def load(recipe: Recipe, folder: Path | None) -> GeneratorBundle:
    """`folder=None` builds random weights from the recipe (--init random)."""
    if folder is None:
        unet, scheduler = build_unet(recipe), build_scheduler(recipe)
    else:
        unet = load_strict(UNet2DModel, folder / "unet")
        scheduler = load_scheduler(folder)
        if unet.config.num_class_embeds != recipe.num_classes + 1:
            raise UserError(
                f"{folder}/unet has {unet.config.num_class_embeds} class embeddings; {recipe.name} needs "
                f"{recipe.num_classes} classes plus a null class"
            )
    pipeline = ClassConditionalPipeline(scheduler=scheduler, unet=unet)
    pipeline.set_progress_bar_config(disable=True)
    noise_scheduler = DDPMScheduler.from_config(scheduler.config)
    return GeneratorBundle(recipe, pipeline, "unet", ClassLabelAdapter(recipe.num_classes), noise_scheduler)
