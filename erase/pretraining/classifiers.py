"""Classifiers from scratch on their training split, optionally logging the updates that amnesiac unlearning
later subtracts."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from erase.config import PIPELINES_DIR, Recipe, save_recipe
from erase.data.forget import random_fraction, random_ids, read_index_file
from erase.data.images import load_classification_data
from erase.errors import UserError
from erase.evaluate.classification import accuracy, predict_probs
from erase.methods import make_method
from erase.models import classifier as classifier_family
from erase.pretraining.common import RECORD_NAME, machine, settings_from, write_folder
from erase.tasks.classification import classification_task
from erase.train import unlearn
from erase.update_log import UpdateLogger, check_keep


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

    write_folder(target, save)
    return record
