"""Load and save models per family. A new family is one file here plus its line in FAMILIES."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from erase.config import Recipe, save_recipe
from erase.errors import UserError

# family name -> module in erase.models providing load(recipe, folder) -> GeneratorBundle (ClassifierBundle
# for classifiers, which `erase classify` loads)
FAMILIES = {"ddpm": "erase.models.ddpm", "dit": "erase.models.dit", "classifier": "erase.models.classifier",
            "sd": "erase.models.sd", "ddpm-seed": "erase.models.ddpm_seed"}


@dataclass
class GeneratorBundle:
    """A loaded generator: its sampling pipeline, the trainable denoiser inside it, and its task adapter."""

    recipe: Recipe
    pipeline: Any
    denoiser_attr: str
    adapter: Any
    noise_scheduler: Any

    @property
    def denoiser(self):
        return getattr(self.pipeline, self.denoiser_attr)

    def save(self, folder: Path) -> None:
        """diffusers save_pretrained layout (safetensors) plus the recipe, so the folder is a --model."""
        self.pipeline.save_pretrained(str(folder), safe_serialization=True)
        save_recipe(self.recipe, folder, weights=".")


def family_module(recipe: Recipe):
    if recipe.family not in FAMILIES:
        raise UserError(f"model {recipe.name} has unknown family {recipe.family!r}; known: {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[recipe.family])


def missing_weights_error(recipe: Recipe, folder: Path | None) -> UserError:
    where = f"no weights at {folder}" if folder else "no weights folder configured"
    hint = recipe.weights_hint or f"run `python -m erase pretrain {recipe.name}`"
    return UserError(f"{recipe.name}: {where}; {hint}; or pass --init random for speed measurements")


def weights_folder(recipe: Recipe, weights: str | None) -> Path:
    """The folder to load from: --weights, else the recipe's; absent -> one clear UserError, no work done."""
    folder = Path(weights).expanduser() if weights else recipe.weights_dir
    if folder is None or not folder.is_dir():
        raise missing_weights_error(recipe, folder)
    return folder


def load_generator(recipe: Recipe, weights: str | None = None, init: str = "pretrained") -> GeneratorBundle:
    if init not in ("pretrained", "random"):
        raise UserError(f"--init must be 'pretrained' or 'random', got {init!r}")
    if recipe.family == "classifier":
        raise UserError(f"{recipe.name} is a classifier, not a generator: use `python -m erase classify`")
    module = family_module(recipe)
    if init == "pretrained" and weights and Path(weights).expanduser().is_file():
        from erase.models.convert import load_single_file  # a checkpoint file: converted as `erase import` does

        bundle = load_single_file(recipe, Path(weights).expanduser())
    else:
        locate = getattr(module, "locate", weights_folder)  # a family may look further (sd: the local HF cache)
        folder = None if init == "random" else locate(recipe, weights)
        bundle = module.load(recipe, folder)
    if torch.cuda.is_available():  # sampling (evaluation, generated data) runs where the trainer will train
        bundle.pipeline.to("cuda")
    return bundle
