"""ddpm-seed: the DDIM codebase's `ckpt.pth` (SalUn, SFR-on, Selective Amnesia DDPM code) -> SeedConditionalUNet.

The file is `[model.state_dict(), optimizer.state_dict(), (epoch,) step, (ema shadow)]`; model keys carry
DataParallel's `module.`, the EMA shadow ({parameter name: tensor}) does not. Our module names are the seed
code's, so the weights load key for key after the prefix is dropped. The architecture comes from the run's
YAML config (`--config`: model.ch, ch_mult, num_res_blocks, attn_resolutions, dropout, resamp_with_conv;
data.image_size, channels, n_classes; diffusion betas), else from the recipe (ddpm-cifar10 = SalUn's CIFAR-10
config); the file must match it tensor for tensor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from diffusers import DDIMScheduler

from erase.config import Recipe
from erase.errors import UserError
from erase.models.convert import (Imported, ImportRequest, default_recipe, load_checked, read_config, read_weights,
                                  with_changes)
from erase.models.ddpm_seed import SeedConditionalUNet, bundle_from_parts

DEFAULT_RECIPE = "ddpm-cifar10"
ARCHITECTURE_KEYS = ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout", "resamp_with_conv")
NAMED_SCHEDULES = {"linear": "linear", "quad": "scaled_linear"}  # the seed code's name -> diffusers' (same betas)


def seed_betas(schedule: str, start: float, end: float, steps: int) -> list[float]:
    """The seed code's other beta schedules, computed as it does (float64 numpy), for `trained_betas`."""
    if schedule == "const":
        betas = end * np.ones(steps, dtype=np.float64)
    elif schedule == "jsd":
        betas = 1.0 / np.linspace(steps, 1, steps, dtype=np.float64)
    elif schedule == "sigmoid":
        betas = 1 / (np.exp(-np.linspace(-6, 6, steps)) + 1) * (end - start) + start
    else:
        raise UserError(f"unknown diffusion.beta_schedule {schedule!r}; the seed code knows linear, quad, const, "
                        f"jsd and sigmoid")
    return [float(b) for b in betas]


def section(config: dict, name: str, path: Path) -> dict:
    value = config.get(name)
    if not isinstance(value, dict):
        raise UserError(f"--config {path} has no {name}: section; pass the run's YAML config (e.g. "
                        f"configs/cifar10_train.yml)")
    return value


def value(part: dict, key: str, where: str, path: Path) -> Any:
    if key not in part:
        raise UserError(f"--config {path} lacks {where}.{key}")
    return part[key]


def settings_from_seed_config(path: Path) -> dict[str, Any]:
    """Architecture, image shape, classes, betas and label dropout from the seed run's YAML config."""
    config = read_config(path, "the seed run's config.yml: model, data, diffusion")
    model, data, diffusion = (section(config, n, path) for n in ("model", "data", "diffusion"))
    if model.get("type", "simple") != "simple":
        raise UserError(f"--config {path}: model.type {model['type']!r} is not supported (the ddpm-seed family is "
                        f"the seed code's 'simple' conditional model; 'bayesian' adds a learned logvar)")
    channels = value(data, "channels", "data", path)
    if model.get("in_channels", channels) != channels or model.get("out_ch", channels) != channels:
        raise UserError(f"--config {path}: model.in_channels/out_ch differ from data.channels ({channels}); an "
                        f"epsilon-predicting model has as many output as input channels")
    ch = int(value(model, "ch", "model", path))
    architecture = {k: value(model, k, "model", path) for k in ARCHITECTURE_KEYS}
    architecture.update(ch_mult=list(architecture["ch_mult"]), attn_resolutions=list(architecture["attn_resolutions"]),
                        class_embed_dim=4 * ch, guidance_form="1+w")  # the seed code's class MLP is 4 * ch wide
    schedule = value(diffusion, "beta_schedule", "diffusion", path)
    start, end = float(value(diffusion, "beta_start", "diffusion", path)), float(
        value(diffusion, "beta_end", "diffusion", path))
    steps = int(value(diffusion, "num_diffusion_timesteps", "diffusion", path))
    scheduler: dict[str, Any] = {"num_train_timesteps": steps, "beta_start": start, "beta_end": end,
                                 "clip_sample": False}
    if schedule in NAMED_SCHEDULES:
        scheduler["beta_schedule"] = NAMED_SCHEDULES[schedule]
    else:
        scheduler["trained_betas"] = seed_betas(schedule, start, end, steps)
    return {"architecture": architecture, "resolution": int(value(data, "image_size", "data", path)),
            "channels": int(channels), "num_classes": int(value(data, "n_classes", "data", path)),
            "scheduler": scheduler, "cond_drop": float(model.get("cond_drop_prob", 0.1)),
            "source": f"--config {path}"}


def settings_from_recipe(recipe: Recipe) -> dict[str, Any]:
    return {"architecture": dict(recipe.architecture), "resolution": recipe.resolution, "channels": recipe.channels,
            "num_classes": recipe.num_classes, "scheduler": dict(recipe.scheduler),
            "cond_drop": recipe.train.get("cond_drop", 0.1),
            "source": f"recipe {recipe.name} (pass the run's config with --config if it differs)"}


def check_recipe_agrees(recipe: Recipe, settings: dict[str, Any]) -> None:
    for key, name in (("num_classes", "classes"), ("resolution", "image size"), ("channels", "channels")):
        if getattr(recipe, key) != settings[key]:
            raise UserError(f"{settings['source']} describes {settings[key]} {name}, recipe {recipe.name} "
                            f"{getattr(recipe, key)}: pass --recipe with a recipe for this model")


def class_width_hint(state: dict, ch: int) -> str:
    """Why a seed checkpoint with ch != 128 fails: its blocks expect a 512-wide class embedding, its class MLP
    gives 4 * ch."""
    proj, cemb = state.get("down.0.block.0.temb_cemb_proj.weight"), state.get("cemb.dense.1.weight")
    if proj is None or cemb is None or proj.dim() != 2 or proj.shape[1] == 4 * ch + cemb.shape[0]:
        return ""
    return (f"the file's ResNet blocks read a {proj.shape[1]}-wide [time, class] embedding but its time and class "
            f"MLPs give {4 * ch} + {cemb.shape[0]}: the seed code's blocks take a 512-wide class embedding "
            f"whatever ch is, so a checkpoint with ch = {ch} (not 128) cannot run in its own code either")


def convert(request: ImportRequest) -> Imported:
    recipe = default_recipe(request, DEFAULT_RECIPE, "ddpm-seed")
    settings = settings_from_seed_config(request.config) if request.config else settings_from_recipe(recipe)
    check_recipe_agrees(recipe, settings)
    state, which = read_weights(request)
    unet = SeedConditionalUNet(sample_size=settings["resolution"], in_channels=settings["channels"],
                               out_channels=settings["channels"], num_classes=settings["num_classes"],
                               **settings["architecture"])
    hint = class_width_hint(state, int(settings["architecture"]["ch"])) or f"the architecture is {settings['source']}"
    load_checked(unet, state, f"{request.file} ({which})", hint)
    recipe = with_changes(recipe, architecture=settings["architecture"], scheduler=settings["scheduler"],
                          train={**recipe.train, "cond_drop": settings["cond_drop"]})
    bundle = bundle_from_parts(recipe, unet, DDIMScheduler(**recipe.scheduler))
    return Imported(bundle, {"weights": which, "architecture": settings["source"].split(" (")[0]})
