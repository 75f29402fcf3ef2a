"""Forget/retain data sampled from the original generator itself, for models whose world is not embedded
and for which no --data is given (DiT-XL/2 on ImageNet: SFR-on and SalUn also unlearn on generated images).

The images are generated once per run, with seeds of their own (never the evaluation samples' seeds), and
cached in the run folder (data/generated.safetensors), so a resumed run trains on the same data.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from erase.data.datasets import LabelledImages, split_by_classes
from erase.evaluate.probe import generate_for_classes
from erase.sample import to_uint8

CACHE_NAME = "data/generated.safetensors"
SEED_OFFSET = 1000  # training data seeds: config seed + 1000, disjoint from the evaluation samples' seeds


def pick_classes(num_classes: int, exclude: list[int], count: int | None, seed: int) -> list[int]:
    """`count` classes other than `exclude`, drawn with `seed` (all of them when count is None or too big)."""
    others = [c for c in range(num_classes) if c not in exclude]
    if count is None or count >= len(others):
        return others
    order = torch.randperm(len(others), generator=torch.Generator().manual_seed(seed))
    return sorted(others[i] for i in order[:count].tolist())


def generation_counts(num_classes: int, forget: list[int], settings: dict, seed: int) -> dict[int, int]:
    retain = pick_classes(num_classes, forget, settings.get("retain_classes"), seed)
    counts = {c: int(settings.get("forget_per_class", 64)) for c in forget}
    counts.update({c: int(settings.get("retain_per_class", 8)) for c in retain})
    return counts


def generated_split(bundle, forget: list[int], seed: int, settings: dict,
                    run_folder: Path) -> tuple[LabelledImages, LabelledImages]:
    """(forget set, retain set) of samples of the bundle's model, generated now or read from the run folder."""
    recipe = bundle.recipe
    path = run_folder / CACHE_NAME
    if not path.is_file():
        counts = generation_counts(recipe.num_classes, forget, settings, seed)
        print(f"generating training data with the original model: {sum(counts.values())} samples of "
              f"{len(counts)} classes (cached in {path})", file=sys.stderr)
        images, labels = generate_for_classes(bundle.pipeline, counts, seed + SEED_OFFSET, recipe.sampling,
                                              settings.get("batch_size", 64), desc="generate training data")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"images": to_uint8(images).contiguous(), "labels": labels.contiguous()}, str(tmp))
        tmp.replace(path)
    tensors = load_file(str(path))
    data = LabelledImages(tensors["images"], tensors["labels"], list(recipe.class_names))
    return split_by_classes(data, forget)
