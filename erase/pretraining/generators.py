"""Class-conditional generators (DDPM, DiT) and their world's probe, trained from scratch with a fixed seed.

Training from scratch is the fine-tune method run from random weights on all the data, through the same
trainer as unlearning; retraining without the forget set (the `retrain` reference) is the same call on the
retain set.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

import torch

from erase.config import Recipe, load_recipe
from erase.data import load_world
from erase.errors import UserError
from erase.evaluate.probe import class_metrics, generate_for_classes, predict
from erase.methods import make_method
from erase.models import GeneratorBundle, family_module, load_generator
from erase.models.classifier import SmallCNN, load_probe
from erase.pretraining.common import RECORD_NAME, generator_record, save_generator, settings_from, write_folder
from erase.tasks.classification import ClassificationTask, shift_and_noise
from erase.tasks.denoising import denoising_task
from erase.train import TrainResult, unlearn


def train_generator_from_scratch(recipe: Recipe, dataset, seed: int, steps: int | None = None,
                                 progress: bool = True) -> tuple[GeneratorBundle, TrainResult]:
    """Random weights (seeded) trained on `dataset` with the recipe's pretrain settings.

    `dataset` may be a function of the task adapter (text-to-image data needs the model's tokenizer)."""
    torch.manual_seed(seed)
    bundle = family_module(recipe).load(recipe, None)
    if callable(dataset):
        dataset = dataset(bundle.adapter)
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


def generated_probe_accuracy(recipe: Recipe, pipeline, probe, seed: int) -> dict:
    """How often the probe recognises each class in samples drawn with the recipe's sampling settings."""
    per_class = recipe.evaluate.get("samples_per_class", 50)
    images, labels = generate_for_classes(pipeline, {c: per_class for c in range(recipe.num_classes)}, seed,
                                          recipe.sampling, recipe.evaluate.get("batch_size", 250),
                                          desc="score samples")
    scores = class_metrics(predict(probe, images), labels, [], recipe.class_names)
    return {"samples_per_class": per_class, "sampling": dict(recipe.sampling), "seed": seed,
            "mean": scores["retained_accuracy"], "per_class": scores["per_class_accuracy"]}


def rescore(name: str) -> dict:
    """`pretrain NAME --rescore`: score the shipped weights again (after the recipe's sampling settings
    changed) and update their record, without training."""
    recipe = load_recipe(name)
    if recipe.family == "classifier" or recipe.weights_dir is None or not (recipe.weights_dir / RECORD_NAME).is_file():
        raise UserError(f"--rescore needs an embedded generator with a {RECORD_NAME} record; {name} has none")
    probe, reason = load_probe(recipe)
    if probe is None:
        raise UserError(f"cannot rescore {name}: {reason}")
    path = recipe.weights_dir / RECORD_NAME
    record = json.loads(path.read_text())
    bundle = load_generator(recipe)
    record["generated_probe_accuracy"] = generated_probe_accuracy(recipe, bundle.pipeline, probe, record["seed"])
    record["rescored"] = {"command": f"python -m erase pretrain {name} --rescore",
                          "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = path.with_name(f".{RECORD_NAME}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.rename(path)
    return record


def pretrain_class_generator(recipe: Recipe, seed: int, steps: int | None) -> dict:
    """Probe + class-conditional generator on the recipe's world; returns the record written beside them."""
    started = time.perf_counter()
    if recipe.pretrain.get("probe"):
        probe, probe_record = train_probe(recipe, seed)
        write_folder(recipe.probe_dir, lambda d: probe.save_pretrained(str(d), safe_serialization=True))
        print(f"probe: test accuracy {probe_record['test_accuracy']:.3f}", file=sys.stderr)
    else:  # a second model of the same world is judged by the world's existing probe, never a new one
        probe, reason = load_probe(recipe)
        if probe is None:
            raise UserError(f"{recipe.name} reuses its world's probe, but {reason}: pretrain the model that "
                            f"trains it first (e.g. `python -m erase pretrain ddpm-digits`)")
        probe_record = {"reused": str(recipe.probe_dir)}

    bundle, result = train_generator_from_scratch(recipe, load_world(recipe.world, "train"), seed, steps)
    record = generator_record(recipe, seed, steps, result, started,
                              parameters=sum(p.numel() for p in bundle.denoiser.parameters()), probe=probe_record,
                              generated_probe_accuracy=generated_probe_accuracy(recipe, bundle.pipeline, probe, seed))
    save_generator(recipe, bundle, record)
    return record
