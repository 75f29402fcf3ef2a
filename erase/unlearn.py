"""`erase class`: forget one or more classes of a class-conditional generator, end to end.

Order matters for the guarantees in README: every input is validated (model, weights, method, classes)
before the run folder exists; EVAL.json is written last and marks a complete run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

from erase.config import Recipe, RunConfig, load_recipe
from erase.data import load_world, split_by_classes
from erase.errors import UserError
from erase.evaluate.cache import cached
from erase.evaluate.fid import fid_probe
from erase.evaluate.probe import class_metrics, generate_for_classes, predict
from erase.models import GeneratorBundle, load_generator
from erase.models.classifier import load_probe
from erase.pretrain import denoising_task
from erase.runs import create_run_folder, default_run_name, write_yaml_atomic
from erase.sample import class_rows, labelled_grid
from erase.workflow import (CORE_TRAIN, TRAIN_FIELDS, build_method, finish_run, incomplete_run,  # noqa: F401
                            report_head, resolve_config, save_model, train_settings, unlearn_and_evaluate)


def forget_classes(recipe: Recipe, target: list[str]) -> list[int]:
    if not target:
        raise UserError("nothing to forget: pass --forget CLASS (a class id or name)")
    classes = sorted({recipe.class_index(t) for t in target})
    if len(classes) >= recipe.num_classes:
        raise UserError(f"cannot forget every class of {recipe.name}: keep at least one class to retain")
    return classes


# -- evaluation -------------------------------------------------------------------------------------------
def evaluate_generator(bundle: GeneratorBundle, forget: list[int], config: RunConfig, desc: str,
                       use_cache: bool = False) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Probe accuracy per class, UA/RA and fid_probe of retained classes; also returns the samples.

    `use_cache` (the original model) reuses an earlier evaluation of exactly these weights and settings.
    """
    recipe, settings = bundle.recipe, config.evaluate
    counts = {c: settings.get("forget_samples", 100) if c in forget else settings.get("samples_per_class", 50)
              for c in range(recipe.num_classes)}
    probe, reason = load_probe(recipe)

    def compute() -> dict[str, Any]:
        images, labels = generate_for_classes(bundle.pipeline, counts, config.seed, recipe.sampling,
                                              settings.get("batch_size", 250), desc=desc)
        if probe is None:
            return {"metrics": {"skipped": f"probe metrics skipped: {reason}"}, "images": images, "labels": labels}
        metrics = class_metrics(predict(probe, images), labels, forget, recipe.class_names)
        if recipe.world is not None:
            real = load_world(recipe.world, "all")
            retained_real = real.subset(~torch.isin(real.labels, torch.tensor(forget))).images
            retained_fake = images[~torch.isin(labels, torch.tensor(forget))]
            metrics["fid_probe"] = fid_probe(probe, retained_real, retained_fake)
        metrics["sampling"] = dict(recipe.sampling)
        return {"metrics": metrics, "images": images, "labels": labels}

    if use_cache:
        key = {"counts": counts, "seed": config.seed, "sampling": recipe.sampling, "world": recipe.world,
               "forget": forget, "probe": str(recipe.probe_dir) if probe is None else "weights"}
        result = cached("class-eval", [bundle.denoiser] + ([probe] if probe is not None else []), key, compute)
    else:
        result = compute()
    return result["metrics"], result["images"], result["labels"]


def grid_image(bundle: GeneratorBundle, images, labels, per_row: int, title: str):
    classes = list(range(bundle.recipe.num_classes))
    rows = class_rows(images, labels, classes, per_row)
    return labelled_grid(rows, [bundle.recipe.class_names[c] for c in classes], title=title)


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

    if run_folder is None:
        target_name = "+".join(recipe.class_names[c] for c in forget)
        run_folder = create_run_folder(config.out, default_run_name(recipe.name, config.method, target_name),
                                       overwrite)
        write_yaml_atomic(run_folder / "config.yaml", config.to_dict())
    print(f"run folder: {run_folder}", file=sys.stderr)
    per_row = config.evaluate.get("grid_per_class", 8)

    def evaluate(bundle, desc, use_cache):
        metrics, images, labels = evaluate_generator(bundle, forget, config, desc, use_cache=use_cache)
        return metrics, grid_image(bundle, images, labels, per_row, "before" if use_cache else "after")

    target = {"kind": "class", "value": forget[0] if len(forget) == 1 else forget,
              "name": "+".join(recipe.class_names[c] for c in forget)}
    unlearn_and_evaluate(run_folder, config, bundle, task, method, forget_set, retain_set, evaluate, target,
                         command_line, started)
    return run_folder


def resume_class(run: str, command_line: str) -> Path:
    folder, config = incomplete_run(run)
    recipe = load_recipe(config.model)
    return run_class(config, recipe, command_line, run_folder=folder)
