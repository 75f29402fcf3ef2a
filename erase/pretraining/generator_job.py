"""A class-conditional generator trained on a dataset folder, as a long job (`erase pretrain ddpm --data DIR`,
`erase pretrain ddpm-cifar10 --data DIR`).

While it runs, the out folder holds the job (pretrain.yaml), accelerate checkpoints (checkpoints/), the loss
history (history.jsonl) and a sample grid every N steps (grids/). `--resume OUT` continues from the last
checkpoint. When it ends, the folder becomes a model: the pipeline's save_pretrained files, erase_recipe.yaml
(which remembers the data folder and the probe) and PRETRAIN.json, written last.

Training is the `ft` method from random weights on the train split, through the one trainer (EMA, gradient
clipping, accelerate processes and mixed precision come with it).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from erase.config import Recipe, recipe_from_dict, save_recipe
from erase.data.class_sets import recipe_labels
from erase.data.images import load_folder
from erase.errors import UserError
from erase.evaluate.probe import generate_for_classes
from erase.files import write_json_atomic, write_yaml_atomic
from erase.methods import make_method
from erase.models import family_module
from erase.models.classifier import load_probe
from erase.pretraining.common import RECORD_NAME, machine, settings_from
from erase.pretraining.generators import generated_probe_accuracy
from erase.runs.folders import create_run_folder
from erase.runs.processes import is_main, shared_folder, wait_for_everyone
from erase.sample import class_rows, labelled_grid, save_image_atomic
from erase.tasks.denoising import augmentation, denoising_task
from erase.train import StepHook, unlearn

JOB_FILE = "pretrain.yaml"
GRID_CLASSES = 10  # rows of the progress grids (the first classes)


class GridHook(StepHook):
    """Every `every` steps, the main process draws one row of samples per class into grids/step-K.png (the
    current weights, before EMA; the same seeds every time, so the grids show the model learning)."""

    def __init__(self, pipeline, recipe: Recipe, folder: Path, every: int, seed: int, per_class: int = 8):
        self.pipeline, self.recipe, self.folder = pipeline, recipe, folder
        self.every, self.seed, self.per_class = every, seed, per_class
        self.main = is_main()

    def after_step(self, model, step: int) -> None:
        done = step + 1
        if self.main and self.every and done % self.every == 0:
            self.draw(model, f"step-{done:07d}", f"step {done}")

    def draw(self, model, name: str, title: str) -> Path:
        training = model.training
        model.eval()
        classes = list(range(min(GRID_CLASSES, self.recipe.num_classes)))
        images, labels = generate_for_classes(self.pipeline, {c: self.per_class for c in classes}, self.seed,
                                              self.recipe.sampling, desc="grid")
        model.train(training)
        path = self.folder / "grids" / f"{name}.png"
        names = [self.recipe.class_names[c] for c in classes]
        save_image_atomic(labelled_grid(class_rows(images, labels, classes, self.per_class), names, title=title),
                          path)
        return path


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an out folder that exists (a finished model, a job to resume, anything else)."""
    if not out.exists() or overwrite:
        return
    if (out / JOB_FILE).is_file() and not (out / RECORD_NAME).is_file():
        raise UserError(f"{out} holds an unfinished pretrain job: continue it with `python -m erase pretrain "
                        f"--resume {out}`, or pass --overwrite to start again")
    raise UserError(f"output folder {out} already exists: pass --overwrite to replace it or choose another --out")


def start_job(out: Path, recipe: Recipe, command: str, seed: int, mixed_precision: str, overwrite: bool,
              keep_checkpoints: bool = False, score_samples: int | None = None) -> Path:
    """Create the out folder (main process) and write the job into it."""
    folder = create_run_folder(str(out), out.name, overwrite)
    write_yaml_atomic(folder / JOB_FILE, {"command": command, "seed": seed, "mixed_precision": mixed_precision,
                                          "keep_checkpoints": keep_checkpoints, "score_samples": score_samples,
                                          "recipe": recipe.to_dict()})
    return folder


def read_job(folder: Path) -> tuple[dict[str, Any], Recipe]:
    """An unfinished job to resume; anything else is a UserError saying what it is."""
    import yaml

    if not (folder / JOB_FILE).is_file():
        raise UserError(f"{folder} is not a pretrain job folder (no {JOB_FILE}): give the --out of a "
                        f"`pretrain ddpm --data` or `pretrain ddpm-cifar10 --data` run")
    if (folder / RECORD_NAME).is_file():
        raise UserError(f"{folder} is already complete ({RECORD_NAME} exists); nothing to resume")
    try:
        job = yaml.safe_load((folder / JOB_FILE).read_text())
        return job, recipe_from_dict(job["recipe"], folder / JOB_FILE)
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise UserError(f"{folder / JOB_FILE} is damaged ({exc}); start again with --overwrite") from None


def training_images(recipe: Recipe):
    """The train split of the recipe's data folder, labelled with the recipe's class ids."""
    train, _ = load_folder(Path(recipe.data), recipe.resolution, recipe.channels)
    return recipe_labels(train, recipe, Path(recipe.data))


def run_job(folder: Path, data=None) -> dict[str, Any] | None:
    """Train (or continue) the job in `folder`; the main process then saves the model and returns the record.
    `data`: the training images when the caller has read them already."""
    started = time.perf_counter()
    job, recipe = read_job(folder)
    data = data if data is not None else training_images(recipe)
    probe, reason = load_probe(recipe)  # matched to the generator: classes, image size, colour
    seed, section = int(job["seed"]), recipe.pretrain
    torch.manual_seed(seed)
    bundle = family_module(recipe).load(recipe, None)
    task = denoising_task(bundle)
    task.augment = augmentation(section.get("augment"))
    settings = settings_from({**section, "seed": seed}, seed)  # the job's seed, whatever the recipe says
    settings.checkpoint_every = int(section.get("checkpoint_every", 0))
    settings.mixed_precision = job.get("mixed_precision", "no")
    grids = GridHook(bundle.pipeline, recipe, folder, int(section.get("grid_every", 0)), seed)
    result = unlearn(bundle.denoiser, task, make_method("ft"), None, data, settings,
                     checkpoint_dir=folder / "checkpoints", history_path=folder / "history.jsonl",
                     desc=f"train {recipe.name}", hooks=(grids,))
    if not is_main():
        wait_for_everyone()
        return None
    final_grid = grids.draw(bundle.denoiser, "final", f"final (EMA) after {len(result.history)} steps")
    record = job_record(job, recipe, bundle, result, settings, len(data))
    record["grids"] = str(final_grid.relative_to(folder))
    record["probe"] = {"folder": str(recipe.probe_dir) if recipe.probe else None}
    if probe is not None:
        record["probe"]["test_accuracy"] = probe_test_accuracy(recipe.probe_dir)
        scored = recipe if not job.get("score_samples") else dataclasses.replace(
            recipe, evaluate={**recipe.evaluate, "samples_per_class": int(job["score_samples"])})
        record["generated_probe_accuracy"] = generated_probe_accuracy(scored, bundle.pipeline, probe, seed)
    else:
        record["probe"]["note"] = reason
    record.update({"wall_seconds": round(time.perf_counter() - started, 1), "machine": machine(),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    finish_job(folder, bundle, recipe, record, keep_checkpoints=bool(job.get("keep_checkpoints")))
    wait_for_everyone()
    return record


def job_record(job: dict, recipe: Recipe, bundle, result, settings, train_images: int) -> dict[str, Any]:
    """PRETRAIN.json's account of the training: command, steps, settings, time, final loss, data."""
    tail = result.history[-100:]
    return {
        "command": job["command"],
        "seed": settings.seed,
        "steps": len(result.history),
        "resumed_from": result.resumed_from,
        "batch_size": settings.batch_size, "lr": settings.lr, "ema_decay": settings.ema_decay,
        "augment": recipe.pretrain.get("augment", "none"),
        "processes": result.processes, "mixed_precision": settings.mixed_precision,
        "train_seconds": round(result.train_seconds, 1),
        "final_loss": sum(r["retain_loss"] for r in tail) / max(1, len(tail)),
        "parameters": sum(p.numel() for p in bundle.denoiser.parameters()),
        "data": {"folder": recipe.data, "classes": list(recipe.class_names), "train_images": train_images,
                 "resolution": recipe.resolution, "channels": recipe.channels},
    }


def probe_test_accuracy(folder: Path | None) -> float | None:
    record = folder / RECORD_NAME if folder else None
    if record is None or not record.is_file():
        return None
    return json.loads(record.read_text()).get("test_accuracy")


def finish_job(folder: Path, bundle, recipe: Recipe, record: dict, keep_checkpoints: bool) -> None:
    """The weights and recipe move in from a temporary sibling, then PRETRAIN.json marks the model complete."""
    tmp = folder / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    bundle.pipeline.save_pretrained(str(tmp), safe_serialization=True)
    save_recipe(recipe, tmp, weights=".")
    for entry in tmp.iterdir():
        target = folder / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        entry.replace(target)
    tmp.rmdir()
    if not keep_checkpoints:
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    write_json_atomic(folder / RECORD_NAME, record)


def pretrain_generator(out: Path, recipe: Recipe, command: str, seed: int, mixed_precision: str = "no",
                       overwrite: bool = False, keep_checkpoints: bool = False,
                       score_samples: int | None = None) -> dict | None:
    """A new job: everything is checked (data read, probe matched) before the folder exists; then train."""
    check_out(out, overwrite)
    data = training_images(recipe)  # unreadable images, unknown classes... fail here, before the folder exists
    load_probe(recipe)
    augmentation(recipe.pretrain.get("augment"))
    folder = shared_folder(lambda: start_job(out, recipe, command, seed, mixed_precision, overwrite,
                                             keep_checkpoints, score_samples))
    if is_main():
        print(f"pretrain folder: {folder} (continue an interrupted job with `python -m erase pretrain "
              f"--resume {folder}`)", file=sys.stderr)
    return run_job(folder, data)

