"""Load and save models per family. A new family is one file here plus its line in FAMILIES.

Light at import (no torch): finding and checking a weights folder happens before the family module, and with
it torch and diffusers, is imported.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erase.config import Recipe, save_recipe
from erase.errors import UserError
from erase.models.io import check_weight_files

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


# Families whose models cannot recompute activations in the backward pass: --gradient-checkpointing is refused
# for them before anything is loaded (other families are asked by their loaded model, erase.train.check_settings).
NO_GRADIENT_CHECKPOINTING = ("classifier",)


def check_family_settings(recipe: Recipe, training: dict) -> None:
    """Refuse, from the family alone, training settings its models cannot honour."""
    if training.get("gradient_checkpointing") and recipe.family in NO_GRADIENT_CHECKPOINTING:
        raise UserError(f"{recipe.name} ({recipe.family}) does not support --gradient-checkpointing (diffusers "
                        f"generators do): run without it")


def family_module(recipe: Recipe):
    if recipe.family not in FAMILIES:
        raise UserError(f"model {recipe.name} has unknown family {recipe.family!r}; known: {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[recipe.family])


def missing_weights_error(recipe: Recipe, folder: Path | None, repo: str | None = None) -> UserError:
    where = f"no weights at {folder}" if folder else "no weights folder configured"
    where += f" nor in the Hugging Face cache ({repo})" if repo else ""
    hint = recipe.weights_hint or f"run `python -m erase pretrain {recipe.name}`"
    instead = "--init random --tiny for a test run" if recipe.family == "sd" else \
        "--init random for speed measurements"
    return UserError(f"{recipe.name}: {where}; {hint}; or pass {instead}")


def hub_cache_folder(repo_id: str) -> Path | None:
    """The newest snapshot of `repo_id` in the local Hugging Face cache, without any network access."""
    try:
        from huggingface_hub import constants

        cache_dir = os.environ.get("HF_HUB_CACHE") or None  # read now, not at import, so it can be pointed
        if not (Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir():
            return None  # not cached: said without importing snapshot_download (a second, under load)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    except Exception:  # not cached (LocalEntryNotFoundError), or no huggingface_hub: both mean "absent"
        return None


def weights_folder(recipe: Recipe, weights: str | None) -> Path:
    """The folder to load from: --weights, else the recipe's, else the local Hugging Face cache of the
    recipe's `extra.hf_repo`; absent -> one clear UserError, no work done."""
    if weights:
        folder = Path(weights).expanduser()
        if not folder.is_dir():
            raise missing_weights_error(recipe, folder)
        return folder
    folder = recipe.weights_dir
    if folder is not None and folder.is_dir():
        return folder
    repo = recipe.extra.get("hf_repo")
    cached = hub_cache_folder(repo) if repo else None
    if cached is None:
        raise missing_weights_error(recipe, folder, repo)
    return cached


def check_weights(recipe: Recipe, weights: str | None, init: str = "pretrained") -> Path | None:
    """Before any heavy import: the weights folder (or a generator's single checkpoint file) exists and every
    safetensors file in it is whole (None for --init random). Whether the tensors fit the architecture is checked
    when the family builds the model."""
    if init not in ("pretrained", "random"):
        raise UserError(f"--init must be 'pretrained' or 'random', got {init!r}")
    if init == "random":
        return None
    file = Path(weights).expanduser() if weights else None
    if file is not None and file.is_file() and recipe.family != "classifier":
        if file.suffix == ".safetensors":  # a single checkpoint file of a generator, converted on load
            check_weight_files(file)
        return file
    folder = weights_folder(recipe, weights)
    check_weight_files(folder)
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
        locate = getattr(module, "locate", weights_folder)  # a family may look further
        folder = None if init == "random" else locate(recipe, weights)
        bundle = module.load(recipe, folder)
    import torch

    if torch.cuda.is_available():  # sampling (evaluation, generated data) runs where the trainer will train
        bundle.pipeline.to("cuda")
    return bundle
