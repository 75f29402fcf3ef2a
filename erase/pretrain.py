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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from erase.config import PIPELINES_DIR, Recipe, load_recipe, save_recipe
from erase.data import load_world
from erase.data.forget import random_fraction, random_ids, read_index_file
from erase.data.images import load_classification_data
from erase.errors import UserError
from erase.evaluate.classification import accuracy, predict_probs
from erase.evaluate.probe import class_metrics, generate_for_classes, predict
from erase.methods import make_method
from erase.models import GeneratorBundle, family_module
from erase.models import classifier as classifier_family
from erase.models.classifier import SmallCNN, load_probe
from erase.tasks.classification import ClassificationTask, classification_task, shift_and_noise
from erase.tasks.denoising import DenoisingTask
from erase.train import TrainResult, TrainSettings, unlearn
from erase.update_log import UpdateLogger, check_keep

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


def _write_folder(folder: Path, save) -> None:
    """Write into a temporary sibling and rename, so an interrupted pretrain leaves the old weights intact."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


RECORD_NAME = "PRETRAIN.json"


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
    from erase.models import load_generator
    from erase.models.classifier import load_probe

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
        _write_folder(recipe.probe_dir, lambda d: probe.save_pretrained(str(d), safe_serialization=True))
        print(f"probe: test accuracy {probe_record['test_accuracy']:.3f}", file=sys.stderr)
    else:  # a second model of the same world is judged by the world's existing probe, never a new one
        probe, reason = load_probe(recipe)
        if probe is None:
            raise UserError(f"{recipe.name} reuses its world's probe, but {reason}: pretrain the model that "
                            f"trains it first (e.g. `python -m erase pretrain ddpm-digits`)")
        probe_record = {"reused": str(recipe.probe_dir)}

    bundle, result = train_generator_from_scratch(recipe, load_world(recipe.world, "train"), seed, steps)
    tail = result.history[-100:]
    record = {
        "command": f"python -m erase pretrain {recipe.name}" + (f" --steps {steps}" if steps else ""),
        "seed": seed,
        "steps": len(result.history),
        "batch_size": recipe.pretrain.get("batch_size"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "final_loss": sum(r["retain_loss"] for r in tail) / max(1, len(tail)),
        "parameters": sum(p.numel() for p in bundle.denoiser.parameters()),
        "probe": probe_record,
        "generated_probe_accuracy": generated_probe_accuracy(recipe, bundle.pipeline, probe, seed),
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

    def save(folder: Path) -> None:
        bundle.pipeline.save_pretrained(str(folder), safe_serialization=True)
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")

    _write_folder(recipe.weights_dir, save)
    return record


@dataclass
class LogRequest:
    """`--log-updates`: which training samples to watch and which keep fractions to store."""

    classes: list[str] = field(default_factory=list)
    random: float | None = None
    indices: str | None = None
    seed: int = 0
    keeps: list[float] = field(default_factory=lambda: [1.0])

    def logged_ids(self, recipe: Recipe, labels: torch.Tensor) -> torch.Tensor:
        """The union of the named classes, the seeded random fraction and the ids in the file."""
        if not (self.classes or self.random is not None or self.indices):
            raise UserError("--log-updates needs what to log: --log-classes C, --log-random FRACTION "
                            "and/or --log-indices FILE")
        chosen = torch.zeros(len(labels), dtype=torch.bool)
        for value in self.classes:
            chosen |= labels == recipe.class_index(value)
        if self.random is not None:
            chosen[random_ids(len(labels), random_fraction(str(self.random)), self.seed)] = True
        if self.indices:
            chosen[read_index_file(self.indices, len(labels))] = True
        return chosen.nonzero().flatten()


def classifier_target(recipe: Recipe, out: str | None, data: str | None) -> Path:
    """Where a classifier pretrain writes: --out, else the recipe's weights folder; never over foreign weights."""
    target = Path(out).expanduser() if out else recipe.weights_dir
    if target is None:
        raise UserError(f"{recipe.name} has no weights folder in its recipe: pass --out DIR")
    embedded = PIPELINES_DIR in target.resolve().parents
    if data is not None and embedded:
        raise UserError(f"--data would replace the shipped {recipe.name} weights with a model of other data: "
                        f"pass --out DIR as well")
    if target.exists() and not (target / "PRETRAIN.json").is_file():
        raise UserError(f"{target} exists and was not written by `erase pretrain`; refusing to overwrite it "
                        f"(pass --out to write elsewhere)")
    return target


def pretrain_classifier(recipe: Recipe, seed: int, steps: int | None, data: str | None = None,
                        log: LogRequest | None = None, out: str | None = None, command: str = "") -> dict:
    """A classifier from scratch on the training split (the recipe's pretrain section); optional update log."""
    started = time.perf_counter()
    target = classifier_target(recipe, out, data)
    train, test = load_classification_data(recipe, data)
    hooks, logger = (), None
    if log is not None:
        logged = log.logged_ids(recipe, train.labels)
        logger = UpdateLogger(logged, [check_keep(k) for k in log.keeps], description={
            "model": recipe.name, "classes": log.classes, "random": log.random, "random_seed": log.seed,
            "indices": log.indices, "logged_samples": len(logged)})
        hooks = (logger,)
    torch.manual_seed(seed)
    bundle = classifier_family.load(recipe, None)
    settings = settings_from(recipe.pretrain, seed, steps=steps)
    result = unlearn(bundle.model, classification_task(recipe), make_method("ft"), None, train, settings,
                     desc=f"train {recipe.name}", hooks=hooks)
    tail = result.history[-50:]
    record = {
        "command": command or f"python -m erase pretrain {recipe.name}",
        "seed": seed, "steps": len(result.history), "batch_size": settings.batch_size,
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "final_loss": sum(r["retain_loss"] for r in tail) / max(1, len(tail)),
        "train_accuracy": accuracy(*predict_probs(bundle.model, train)),
        "test_accuracy": accuracy(*predict_probs(bundle.model, test)),
        "parameters": sum(p.numel() for p in bundle.model.parameters()),
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if logger is not None:
        record["update_logs"] = {
            f"{keep:g}": {"folder": str(folder), "logged_samples": int(len(logger.logged)),
                          "logged_batches": len(logger.steps),
                          "storage_bytes": sum(f.stat().st_size for f in folder.glob("step-*.safetensors")),
                          "dense_float32_bytes": 4 * record["parameters"] * len(logger.steps)}
            for keep, folder in logger.folders.items()}

    def save(folder: Path) -> None:
        bundle.model.save_pretrained(str(folder), safe_serialization=True)
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
        if out:  # a folder outside pipelines/ carries its recipe, so it works as --model
            save_recipe(recipe, folder, weights=".", data=str(Path(data).resolve()) if data else recipe.data)

    _write_folder(target, save)
    return record


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


def _pretrain_text_to_image(recipe: Recipe, seed: int, steps: int | None) -> dict:
    from erase.pretrain_t2i import pretrain_text_to_image

    return pretrain_text_to_image(recipe, seed, steps)


PRETRAINERS = {"ddpm": pretrain_class_generator, "dit": pretrain_class_generator, "classifier": pretrain_classifier,
               "sd": _pretrain_text_to_image}


def pretrain(name: str, seed: int | None = None, steps: int | None = None, data: str | None = None,
             log: LogRequest | None = None, out: str | None = None, command: str = "") -> dict:
    recipe = load_recipe(name)
    if recipe.family not in PRETRAINERS:
        raise UserError(f"pretrain does not know family {recipe.family!r} yet")
    if not recipe.pretrain.get("steps") and steps is None:
        raise UserError(f"{name} has no pretrain recipe (pretrain.steps): it is trained elsewhere; pass its weights "
                        f"with --weights, or add a pretrain section to a copy of its recipe")
    seed = recipe.pretrain.get("seed", 0) if seed is None else seed
    if recipe.family == "classifier":
        return pretrain_classifier(recipe, seed, steps, data, log, out, command)
    if log is not None:
        raise UserError(f"--log-updates is implemented for classifiers: {name}'s pretraining keeps an EMA of the "
                        f"weights, and the logged raw updates do not add up to the EMA weights")
    if data is not None or out is not None:
        raise UserError(f"--data and --out apply to classifiers; {name} trains on its embedded world")
    if recipe.weights_dir is None or PIPELINES_DIR not in recipe.weights_dir.parents:
        raise UserError(f"{name} is not an embedded model: pretrain rebuilds only the models shipped in pipelines/")
    return PRETRAINERS[recipe.family](recipe, seed, steps)
