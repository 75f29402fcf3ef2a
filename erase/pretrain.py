"""`erase pretrain <model>`: rebuild an embedded model (and its probe) from scratch with a fixed seed.

Training from scratch is the fine-tune method run from random weights on all the data, through the same
trainer as unlearning; retraining without the forget set (the `retrain` reference) is the same call on the
retain set.
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from erase.config import PIPELINES_DIR, Recipe, load_recipe
from erase.data import load_world
from erase.errors import UserError
from erase.evaluate.probe import class_metrics, generate_for_classes, predict
from erase.methods import make_method
from erase.models import GeneratorBundle, family_module
from erase.models.classifier import SmallCNN
from erase.tasks.classification import ClassificationTask, shift_and_noise
from erase.tasks.denoising import DenoisingTask
from erase.train import TrainResult, TrainSettings, unlearn

TRAIN_KEYS = {"steps", "batch_size", "lr", "optimizer", "weight_decay", "momentum", "lr_schedule",
              "warmup_steps", "ema_decay", "seed"}


def settings_from(section: dict, seed: int, **overrides) -> TrainSettings:
    values = {k: v for k, v in section.items() if k in TRAIN_KEYS}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.setdefault("seed", seed)
    return TrainSettings(**values)


def denoising_task(bundle: GeneratorBundle) -> DenoisingTask:
    train = bundle.recipe.train
    return DenoisingTask(bundle.adapter, bundle.noise_scheduler, cond_drop=train.get("cond_drop", 0.1),
                         saliency_guidance=train.get("saliency_guidance", 1.0))


def train_generator_from_scratch(recipe: Recipe, dataset, seed: int, steps: int | None = None,
                                 progress: bool = True) -> tuple[GeneratorBundle, TrainResult]:
    """Random weights (seeded) trained on `dataset` with the recipe's pretrain settings."""
    torch.manual_seed(seed)
    bundle = family_module(recipe).load(recipe, None)
    settings = settings_from(recipe.pretrain, seed, steps=steps)
    settings.progress = progress
    result = unlearn(bundle.denoiser, denoising_task(bundle), make_method("ft"), None, dataset, settings,
                     desc=f"train {recipe.name}")
    return bundle, result


def train_probe(recipe: Recipe, seed: int) -> tuple[SmallCNN, dict]:
    """The world's probe classifier, trained on the train split, scored on the test split."""
    section = recipe.pretrain.get("probe", {})
    train, test = load_world(recipe.world, "train"), load_world(recipe.world, "test")
    torch.manual_seed(seed)
    probe = SmallCNN(in_channels=recipe.channels, num_classes=recipe.num_classes)
    settings = settings_from({"optimizer": "adamw", "lr_schedule": "cosine", **section}, seed)
    started = time.perf_counter()
    task = ClassificationTask(recipe.num_classes, augment=shift_and_noise())
    unlearn(probe, task, make_method("ft"), None, train, settings, desc=f"train {recipe.world} probe")
    accuracy = (predict(probe, test.images) == test.labels).float().mean().item()
    return probe, {"test_accuracy": accuracy, "steps": settings.steps, "seconds": time.perf_counter() - started}


def _write_folder(folder: Path, save) -> None:
    """Write into a temporary sibling and rename, so an interrupted pretrain leaves the old weights intact."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def pretrain_class_generator(recipe: Recipe, seed: int, steps: int | None) -> dict:
    """Probe + class-conditional generator on the recipe's world; returns the record written beside them."""
    started = time.perf_counter()
    probe, probe_record = train_probe(recipe, seed)
    _write_folder(recipe.probe_dir, lambda d: probe.save_pretrained(str(d), safe_serialization=True))
    print(f"probe: test accuracy {probe_record['test_accuracy']:.3f}", file=sys.stderr)

    bundle, result = train_generator_from_scratch(recipe, load_world(recipe.world, "train"), seed, steps)
    tail = result.history[-100:]
    evaluation = recipe.evaluate
    per_class = evaluation.get("samples_per_class", 50)
    images, labels = generate_for_classes(
        bundle.pipeline, {c: per_class for c in range(recipe.num_classes)}, seed, recipe.sampling,
        evaluation.get("batch_size", 250), desc="score samples")
    scores = class_metrics(predict(probe, images), labels, [], recipe.class_names)
    record = {
        "command": f"python -m erase pretrain {recipe.name}" + (f" --steps {steps}" if steps else ""),
        "seed": seed,
        "steps": len(result.history),
        "batch_size": recipe.pretrain.get("batch_size"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "final_loss": sum(r["retain_loss"] for r in tail) / max(1, len(tail)),
        "probe": probe_record,
        "generated_probe_accuracy": {"samples_per_class": per_class, "sampling": recipe.sampling,
                                     "mean": scores["retained_accuracy"],
                                     "per_class": scores["per_class_accuracy"]},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

    def save(folder: Path) -> None:
        bundle.pipeline.save_pretrained(str(folder), safe_serialization=True)
        (folder / "PRETRAIN.json").write_text(json.dumps(record, indent=2) + "\n")

    _write_folder(recipe.weights_dir, save)
    return record


PRETRAINERS = {"ddpm": pretrain_class_generator}


def pretrain(name: str, seed: int | None = None, steps: int | None = None) -> dict:
    recipe = load_recipe(name)
    if recipe.weights_dir is None or PIPELINES_DIR not in recipe.weights_dir.parents:
        raise UserError(f"{name} is not an embedded model: pretrain rebuilds only the models shipped in pipelines/")
    if recipe.family not in PRETRAINERS:
        raise UserError(f"pretrain does not know family {recipe.family!r} yet")
    return PRETRAINERS[recipe.family](recipe, recipe.pretrain.get("seed", 0) if seed is None else seed, steps)
