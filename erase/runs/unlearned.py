"""The unlearned model of a finished run: an erase run's model/ folder, or the model an `erase eval --model` run
judged, read where it was judged from and sampled with its original's settings (classes, sampling, data)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from erase.config import RECIPE_FILE, Recipe, RunConfig, load_recipe


def unlearned_recipe(path: str, original: Recipe) -> tuple[Recipe, str | None]:
    """The unlearned model's recipe and weights folder: a model folder or name erase knows, or a bare
    diffusers folder (model_index.json) of the original's architecture."""
    folder = Path(path).expanduser()
    if folder.is_dir() and not (folder / RECIPE_FILE).is_file() and (folder / "model_index.json").is_file():
        return original, str(folder)
    return load_recipe(path), None


def load_unlearned(recipe: Recipe, weights: str | None, original: Recipe):
    """The unlearned bundle, sampled and judged with the original's settings (classes, sampling, data)."""
    from erase.models import load_generator

    bundle = load_generator(recipe, weights)
    bundle.recipe = dataclasses.replace(original, weights=None)
    return bundle


def unlearned_model(folder: Path, config: RunConfig, original: Recipe):
    """The unlearned model of a finished run: an erase run's model/, or an eval run's judged model, read where it
    was judged from and sampled with the original's settings."""
    from erase.models import load_generator

    if config.command != "eval":
        return load_generator(load_recipe(str(folder / "model")))
    unlearned, weights = unlearned_recipe(config.extra["unlearned"], original)
    return load_unlearned(unlearned, weights, original)
