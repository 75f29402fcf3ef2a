"""Judging a class-conditional generator: the probe (UA/RA per class) and FID of retained classes on samples
drawn with the recipe's sampling settings, plus the labelled grid of those samples."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from erase.config import Recipe, RunConfig
from erase.data.generated import pick_classes
from erase.data.class_sets import has_real_images, real_images
from erase.errors import UserError
from erase.evaluate.cache import cached
from erase.evaluate.fid import frechet_scores, make_fid_backend
from erase.evaluate.imagenet_probe import load_resnet50_probe
from erase.evaluate.probe import class_metrics, generate_for_classes, predict
from erase.models import GeneratorBundle
from erase.models.classifier import load_probe, probe_hint
from erase.sample import GridRows, class_rows


def generator_probe(recipe: Recipe, config: RunConfig):
    """The judge of generated samples: the world's probe CNN, or a ResNet-50 for ImageNet models (recipe
    `extra.probe_kind: resnet50-imagenet`); --probe PATH replaces the recipe's path. (probe | None, reason)."""
    override = config.extra.get("probe")
    if recipe.extra.get("probe_kind") == "resnet50-imagenet":
        return load_resnet50_probe(Path(override).expanduser() if override else recipe.probe_dir)
    if override:
        recipe = dataclasses.replace(recipe, probe=str(Path(override).expanduser().resolve()))
    probe, reason = load_probe(recipe)
    if probe is not None and probe.config.num_classes != recipe.num_classes:
        raise UserError(f"probe {recipe.probe_dir} classifies {probe.config.num_classes} classes, but "
                        f"{recipe.name} has {recipe.num_classes}: {probe_hint(recipe)}")
    return probe, reason


def evaluation_counts(recipe: Recipe, forget: list[int], settings: dict, seed: int) -> dict[int, int]:
    """Samples per evaluated class: every forgotten class, and all retained classes or, with
    `evaluate.retained_classes: N` (ImageNet), N of them drawn with the seed."""
    retained = pick_classes(recipe.num_classes, forget, settings.get("retained_classes"), seed)
    return {c: settings.get("forget_samples", 100) if c in forget else settings.get("samples_per_class", 50)
            for c in sorted(forget + retained)}


@dataclass
class Judges:
    """What scores a generator's samples: the probe (UA/RA) and the FID backend (fid_clean or fid_probe)."""

    probe: Any
    reason: str  # why the probe is missing, when it is
    fid: Any

    @property
    def fid_description(self) -> dict[str, Any] | None:
        return None if self.fid is None else self.fid.description


def make_judges(recipe: Recipe, config: RunConfig) -> Judges:
    """Load the probe and pick the FID backend (against the world's or the data folder's images); a bad
    --inception-weights or damaged probe weights fail here, before any work."""
    probe, reason = generator_probe(recipe, config)
    settings = config.evaluate
    fid = make_fid_backend(probe, settings.get("inception_weights"), settings.get("fid_mode", "clean")) \
        if has_real_images(recipe, config.extra.get("data")) else None
    return Judges(probe, reason, fid)


def evaluate_generator(bundle: GeneratorBundle, forget: list[int], config: RunConfig, desc: str,
                       use_cache: bool = False, judges: Judges | None = None
                       ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Probe accuracy per class, UA/RA and the FID of retained classes; also returns the samples.

    `use_cache` (the original model) reuses an earlier evaluation of exactly these weights and settings.
    """
    recipe, settings = bundle.recipe, config.evaluate
    counts = evaluation_counts(recipe, forget, settings, config.seed)
    judges = judges or make_judges(recipe, config)
    probe = judges.probe

    def compute() -> dict[str, Any]:
        images, labels = generate_for_classes(bundle.pipeline, counts, config.seed, recipe.sampling,
                                              settings.get("batch_size", 250), desc=desc)
        if probe is None:
            return {"metrics": {"skipped": f"probe metrics skipped: {judges.reason}"}, "images": images,
                    "labels": labels}
        metrics = class_metrics(predict(probe, images), labels, forget, recipe.class_names)
        real = real_images(recipe, config.extra.get("data")) if judges.fid is not None else None
        if real is not None:
            retained_real = real.subset(~torch.isin(real.labels, torch.tensor(forget))).images
            retained_fake = images[~torch.isin(labels, torch.tensor(forget))]
            metrics.update(frechet_scores(judges.fid, retained_real, retained_fake))
            metrics["fid_backend"] = judges.fid.description
        metrics["sampling"] = dict(recipe.sampling)
        return {"metrics": metrics, "images": images, "labels": labels}

    if use_cache:
        key = {"counts": counts, "seed": config.seed, "sampling": recipe.sampling, "world": recipe.world,
               "data": str(config.extra.get("data") or recipe.data),
               "forget": forget, "probe": judges.reason if probe is None else "weights",
               "fid": judges.fid_description}
        result = cached("class-eval", [bundle.denoiser] + ([probe] if probe is not None else []), key, compute)
    else:
        result = compute()
    return result["metrics"], result["images"], result["labels"]


def class_grid(bundle: GeneratorBundle, images, labels, forget: list[int], per_row: int) -> GridRows:
    """One row per evaluated class; the forgotten classes' rows highlighted."""
    classes = evaluated_classes(labels)
    return GridRows(grid_rows(images, labels, per_row), row_names(bundle, labels),
                    highlight=[classes.index(c) for c in forget if c in classes])


def evaluated_classes(labels) -> list[int]:
    """The classes that were sampled (all, or a subset for ImageNet-sized models), in id order."""
    return sorted(set(labels.tolist()))


def row_names(bundle: GeneratorBundle, labels) -> list[str]:
    return [bundle.recipe.class_names[c] for c in evaluated_classes(labels)]


def grid_rows(images, labels, per_row: int):
    return class_rows(images, labels, evaluated_classes(labels), per_row)
