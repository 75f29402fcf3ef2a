"""What every pretraining shares: trainer settings from a recipe section, the PRETRAIN.json record's machine
block, and writing a model folder all at once."""
from __future__ import annotations

import platform
import shutil
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
