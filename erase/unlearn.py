"""`erase class`: forget one or more classes of a class-conditional generator, end to end.

Order matters for the guarantees in README: every input is validated (model, weights, method, classes)
before the run folder exists; EVAL.json is written last and marks a complete run.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from erase.config import Recipe, RunConfig, load_recipe
from erase.data import load_world, split_by_classes
from erase.errors import UserError
from erase.evaluate.cache import cached
from erase.evaluate.fid import frechet_scores, make_fid_backend
from erase.evaluate.probe import class_metrics, generate_for_classes, predict
from erase.models import GeneratorBundle, load_generator
from erase.models.classifier import load_probe
from erase.pretrain import denoising_task
from erase.runs import create_run_folder, default_run_name, write_yaml_atomic
from erase.sample import before_after_grid, class_rows, labelled_grid, save_image_atomic
from erase.train import unlearn
from erase.workflow import (CORE_TRAIN, TRAIN_FIELDS, build_method, finish_run, incomplete_run,  # noqa: F401
                            report_head, resolve_config, save_model, train_settings)


def forget_classes(recipe: Recipe, target: list[str]) -> list[int]:
    if not target:
        raise UserError("nothing to forget: pass --forget CLASS (a class id or name)")
    classes = sorted({recipe.class_index(t) for t in target})
    if len(classes) >= recipe.num_classes:
        raise UserError(f"cannot forget every class of {recipe.name}: keep at least one class to retain")
    return classes


# -- evaluation -------------------------------------------------------------------------------------------
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
    """Load the probe and pick the FID backend; a bad --inception-weights fails here, before any work."""
    probe, reason = load_probe(recipe)
    settings = config.evaluate
    fid = make_fid_backend(probe, settings.get("inception_weights"), settings.get("fid_mode", "clean")) \
        if recipe.world is not None else None
    return Judges(probe, reason, fid)


def evaluate_generator(bundle: GeneratorBundle, forget: list[int], config: RunConfig, desc: str,
                       use_cache: bool = False, judges: Judges | None = None
                       ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Probe accuracy per class, UA/RA and the FID of retained classes; also returns the samples.

    `use_cache` (the original model) reuses an earlier evaluation of exactly these weights and settings.
    """
    recipe, settings = bundle.recipe, config.evaluate
    counts = {c: settings.get("forget_samples", 100) if c in forget else settings.get("samples_per_class", 50)
              for c in range(recipe.num_classes)}
    judges = judges or make_judges(recipe, config)
    probe = judges.probe

    def compute() -> dict[str, Any]:
        images, labels = generate_for_classes(bundle.pipeline, counts, config.seed, recipe.sampling,
                                              settings.get("batch_size", 250), desc=desc)
        if probe is None:
            return {"metrics": {"skipped": f"probe metrics skipped: {judges.reason}"}, "images": images,
                    "labels": labels}
        metrics = class_metrics(predict(probe, images), labels, forget, recipe.class_names)
        if judges.fid is not None:
            real = load_world(recipe.world, "all")
            retained_real = real.subset(~torch.isin(real.labels, torch.tensor(forget))).images
            retained_fake = images[~torch.isin(labels, torch.tensor(forget))]
            metrics.update(frechet_scores(judges.fid, retained_real, retained_fake))
            metrics["fid_backend"] = judges.fid.description
        metrics["sampling"] = dict(recipe.sampling)
        return {"metrics": metrics, "images": images, "labels": labels}

    if use_cache:
        key = {"counts": counts, "seed": config.seed, "sampling": recipe.sampling, "world": recipe.world,
               "forget": forget, "probe": str(recipe.probe_dir) if probe is None else "weights",
               "fid": judges.fid_description}
        result = cached("class-eval", [bundle.denoiser] + ([probe] if probe is not None else []), key, compute)
    else:
        result = compute()
    return result["metrics"], result["images"], result["labels"]


def grid_image(bundle: GeneratorBundle, images, labels, per_row: int, title: str):
    return labelled_grid(grid_rows(bundle, images, labels, per_row), bundle.recipe.class_names, title=title)


def grid_rows(bundle: GeneratorBundle, images, labels, per_row: int):
    return class_rows(images, labels, list(range(bundle.recipe.num_classes)), per_row)


def save_grids(folder: Path, bundle: GeneratorBundle, forget: list[int], before: tuple, after: tuple,
               per_row: int) -> None:
    """grids/before.png, grids/after.png and grids/before_after.png (one image, one labelled row per class)."""
    rows_before, rows_after = grid_rows(bundle, *before, per_row), grid_rows(bundle, *after, per_row)
    names = bundle.recipe.class_names
    save_image_atomic(labelled_grid(rows_before, names, title="before"), folder / "grids" / "before.png")
    save_image_atomic(labelled_grid(rows_after, names, title="after"), folder / "grids" / "after.png")
    save_image_atomic(before_after_grid(rows_before, rows_after, names, highlight=forget),
                      folder / "grids" / "before_after.png")


# -- the command ------------------------------------------------------------------------------------------
def run_class(config: RunConfig, recipe: Recipe, command_line: str, overwrite: bool = False,
              run_folder: Path | None = None) -> Path:
    """Unlearn, save, evaluate original and unlearned, write grids, SUMMARY.md and finally EVAL.json."""
    started = time.perf_counter()
    if recipe.family == "classifier":
        raise UserError(f"{recipe.name} is a classifier: use `python -m erase classify --model {config.model}`")
    forget = forget_classes(recipe, config.target)
    method = build_method(config)
    torch.manual_seed(config.seed)
    bundle = load_generator(recipe, config.weights, config.init)
    forget_set, retain_set = split_by_classes(load_world(recipe.world, "train"), forget)
    if len(forget_set) == 0:
        raise UserError(f"the training data of {recipe.name} has no images of class {config.target}")
    task = denoising_task(bundle)
    task.check_objective(method.objective)
    method.validate(bundle.denoiser, forget_set, retain_set)
    judges = make_judges(recipe, config)

    if run_folder is None:
        target_name = "+".join(recipe.class_names[c] for c in forget)
        run_folder = create_run_folder(config.out, default_run_name(recipe.name, config.method, target_name),
                                       overwrite)
        write_yaml_atomic(run_folder / "config.yaml", config.to_dict())
    print(f"run folder: {run_folder}", file=sys.stderr)
    per_row = config.evaluate.get("grid_per_class", 8)

    eval_started = time.perf_counter()
    original, *before = evaluate_generator(bundle, forget, config, "evaluate original", use_cache=True,
                                           judges=judges)
    save_image_atomic(grid_image(bundle, *before, per_row, "before"), run_folder / "grids" / "before.png")
    evaluate_seconds = time.perf_counter() - eval_started

    result = unlearn(bundle.denoiser, task, method, forget_set, retain_set, train_settings(config),
                     checkpoint_dir=run_folder / "checkpoints", history_path=run_folder / "history.jsonl")
    save_model(bundle, run_folder / "model")

    eval_started = time.perf_counter()
    unlearned, *after = evaluate_generator(bundle, forget, config, "evaluate unlearned", judges=judges)
    save_grids(run_folder, bundle, forget, before, after, per_row)
    evaluate_seconds += time.perf_counter() - eval_started

    target = {"kind": "class", "value": forget[0] if len(forget) == 1 else forget,
              "name": "+".join(recipe.class_names[c] for c in forget)}
    report = {
        **report_head(config, method, command_line, target),
        "seconds": {"prepare": round(result.prepare_seconds, 2), "unlearn": round(result.train_seconds, 2),
                    "evaluate": round(evaluate_seconds, 2),
                    "total": round(time.perf_counter() - started, 2)},
        "metrics": {"original": original, "unlearned": unlearned},
    }
    finish_run(run_folder, config, report)
    return run_folder


def resume_class(run: str, command_line: str) -> Path:
    folder, config = incomplete_run(run)
    recipe = load_recipe(config.model)
    return run_class(config, recipe, command_line, run_folder=folder)
