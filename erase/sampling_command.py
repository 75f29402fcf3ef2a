"""`erase sample`: a labelled grid from any class-conditional model, name or folder."""
from __future__ import annotations

from pathlib import Path

import torch

from erase.config import check_positive, load_recipe
from erase.errors import UserError
from erase.evaluate.probe import generate_for_classes
from erase.models import load_generator
from erase.sample import class_rows, labelled_grid, parse_classes, save_image_atomic


def sample_grid(model: str, classes: str, per_class: int, out: str, seed: int = 0,
                guidance_scale: float | None = None, inference_steps: int | None = None,
                weights: str | None = None, init: str = "pretrained") -> Path:
    recipe = load_recipe(model)
    chosen = parse_classes(classes, recipe.num_classes, recipe.class_index)
    per_class = check_positive("--per-class", per_class)
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {out!r}")
    sampling = dict(recipe.sampling)
    if guidance_scale is not None:
        sampling["guidance_scale"] = guidance_scale
    if inference_steps is not None:
        sampling["num_inference_steps"] = check_positive("--inference-steps", inference_steps)
    torch.manual_seed(seed)
    bundle = load_generator(recipe, weights, init)
    images, labels = generate_for_classes(bundle.pipeline, {c: per_class for c in chosen}, seed, sampling,
                                          recipe.evaluate.get("batch_size", 250))
    rows = class_rows(images, labels, chosen, per_class)
    title = f"{recipe.name}  seed {seed}  guidance {sampling.get('guidance_scale')}"
    save_image_atomic(labelled_grid(rows, [recipe.class_names[c] for c in chosen], title=title), path)
    return path
