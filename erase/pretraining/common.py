"""What every pretraining shares: trainer settings from a recipe section, the PRETRAIN.json record, and writing
a model folder all at once."""
from __future__ import annotations

import json
import platform
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from erase.train import TrainSettings

RECORD_NAME = "PRETRAIN.json"
TRAIN_KEYS = {"steps", "batch_size", "lr", "optimizer", "weight_decay", "momentum", "lr_schedule",
              "warmup_steps", "ema_decay", "seed"}


def settings_from(section: dict, seed: int, **overrides) -> TrainSettings:
    values = {k: v for k, v in section.items() if k in TRAIN_KEYS}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.setdefault("seed", seed)
    return TrainSettings(**values)


def write_folder(folder: Path, save) -> None:
    """Write into a temporary sibling and rename, so an interrupted pretrain leaves the old weights intact."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


def generator_record(recipe, seed: int, steps: int | None, result, started: float, **details) -> dict:
    """PRETRAIN.json of an embedded generator: the command that rebuilds it, its training and `details`."""
    tail = result.history[-100:]
    return {
        "command": f"python -m erase pretrain {recipe.name}" + (f" --steps {steps}" if steps else ""),
        "seed": seed,
        "steps": len(result.history),
        "batch_size": recipe.pretrain.get("batch_size"),
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "final_loss": sum(r["retain_loss"] for r in tail) / max(1, len(tail)),
        **details,
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def save_generator(recipe, bundle, record: dict) -> None:
    """The pipeline in save_pretrained layout with its PRETRAIN.json, replacing the recipe's weights at once."""

    def save(folder: Path) -> None:
        bundle.pipeline.save_pretrained(str(folder), safe_serialization=True)
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")

    write_folder(recipe.weights_dir, save)
