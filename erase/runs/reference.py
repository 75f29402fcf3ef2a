"""The retrained reference: the `retrain` method on the retain data, computed once per forget set and cached.

Any model family: the model only needs `from_config`/`save_pretrained` (diffusers ModelMixin). The key is
everything that determines the result: the architecture config, the recipe's pretrain and train sections,
the exact retain data (a digest of its images and labels), the seed and the erase version. Location:
<erase cache>/retrain/<key>/ (save_pretrained layout + RETRAIN.json); $ERASE_CACHE moves the cache,
ERASE_NO_CACHE=1 disables it.

A concept of an embedded text-to-image world (t2i-shapes) has its own reference: the model retrained from scratch
by its recipe's `pretrain` section on the world's captioned images without the concept's, cached the same way in
<erase cache>/retrain-concept/<key>/.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import erase
from erase.config import Recipe, RunConfig
from erase.methods import make_method
from erase.models.io import load_strict
from erase.runs.processes import is_main
from erase.runs.resolve import resolve_config, train_settings
from erase.train import unlearn

RECORD = "RETRAIN.json"


def data_digest(*datasets) -> str:
    """sha256 over the images, labels and sample ids of the given sets."""
    digest = hashlib.sha256()
    for data in datasets:
        for tensor in (data.images, data.labels, data.ids):
            digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def retrain_config(model_name: str, seed: int) -> RunConfig:
    """The `retrain` method's settings for this model: its recipe's pretrain section, this seed."""
    config, _ = resolve_config("retrain reference", model_name, "retrain", [], seed=seed)
    return config


def is_reference_run(config: RunConfig) -> bool:
    """A `--method retrain` run whose settings are exactly the reference's, so the cache may serve it."""
    if config.method != "retrain":  # the starting weights do not matter: retrain re-initialises them
        return False
    reference = retrain_config(config.model, config.seed)
    same = ("steps", "lr", "batch_size", "training", "hyper", "objective", "params", "mixed_precision")
    return all(getattr(config, name) == getattr(reference, name) for name in same)


def cache_key(model, recipe: Recipe, config: RunConfig, retain_set) -> str:
    parts = {
        "class": type(model).__name__,
        "config": {k: v for k, v in dict(model.config).items() if not k.startswith("_")},
        "training": {"steps": config.steps, "lr": config.lr, "batch_size": config.batch_size, **config.training},
        "hyper": config.hyper,
        "train_section": recipe.train,
        "seed": config.seed,
        "retain": data_digest(retain_set),
        "version": erase.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def retrained_reference(model, task, forget_set, retain_set, recipe: Recipe, model_name: str, seed: int,
                        checkpoint_dir: Path | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(retrained model, record); the record says whether it came from the cache and how long it took.

    An interrupted retraining leaves its checkpoint in `checkpoint_dir` (inside the run folder, so
    `--resume RUN` continues it); it is removed once the result is cached.
    """
    config = retrain_config(model_name, seed)

    def train() -> tuple[torch.nn.Module, dict[str, Any]]:
        retrained = copy.deepcopy(model)
        result = unlearn(retrained, task, make_method("retrain", **config.hyper), forget_set, retain_set,
                         train_settings(config), checkpoint_dir=checkpoint_dir, desc=f"retrain {recipe.name}")
        return retrained, {"steps": config.steps, "seed": seed, "lr": config.lr, "batch_size": config.batch_size,
                           "training": config.training, "retain_samples": len(retain_set),
                           "seconds": round(result.prepare_seconds + result.train_seconds, 2),
                           "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    retrained, record = cached_retraining("retrain", cache_key(model, recipe, config, retain_set), RECORD,
                                          type(model), train)
    if checkpoint_dir is not None and is_main() and not record["cached"]:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return retrained, record


def cached_retraining(kind: str, key: str, record_name: str, model_cls, train
                      ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model, record) from <erase cache>/<kind>/<key>/, or `train()` -> (model, record) now and stored there
    (save_pretrained + the record, written to a temporary folder and renamed). A damaged entry is recomputed,
    never trusted; ERASE_NO_CACHE=1 neither reads nor writes. The record gains `cached` and `cache`."""
    from erase.evaluate import cache

    use_cache = not os.environ.get("ERASE_NO_CACHE")
    folder = cache.CACHE_DIR / kind / key
    if use_cache and (folder / record_name).is_file():
        try:
            record = json.loads((folder / record_name).read_text())
            return load_strict(model_cls, folder).eval(), {**record, "cached": True, "cache": str(folder)}
        except Exception:  # a damaged entry is recomputed, never trusted
            shutil.rmtree(folder, ignore_errors=True)
    trained, record = train()
    if use_cache and is_main():  # every process trained the same weights; one writes them
        tmp = folder.with_name(f".{key}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        trained.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / record_name).write_text(json.dumps(record, indent=2, default=str) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return trained.eval(), {**record, "cached": False, "cache": str(folder) if use_cache else None}


# -- the retrained reference of a concept of the shapes world (t2i-shapes): the model retrained from scratch by
# its pretrain recipe on the world's captioned images, every image of the concept's value left out --
CONCEPT_RECORD = "RETRAIN-CONCEPT.json"
CONCEPT_WORLDS = ("shapes",)  # embedded text-to-image worlds whose captioned images a reference retrains on


def without_concept(concept: str):
    """The shapes world's captioned train images minus every image showing `concept` (e.g. every triangle), as
    a function of the task adapter (its tokenizer): the data `train_generator_from_scratch` takes."""
    from erase.data.datasets import PromptImages
    from erase.data.shapes import ATTRIBUTES, attribute_of, load_shapes

    attribute = attribute_of(concept)
    column, value = list(ATTRIBUTES).index(attribute), ATTRIBUTES[attribute].index(concept.strip().lower())
    data = load_shapes("train")
    keep = (data.labels[:, column] != value).nonzero().flatten()

    def dataset(adapter) -> PromptImages:
        return PromptImages(data.images[keep], adapter.tokenize([data.captions[i] for i in keep.tolist()]))

    return dataset, len(keep)


def concept_cache_key(recipe: Recipe, concept: str, seed: int) -> str:
    parts = {"architecture": recipe.architecture, "resolution": recipe.resolution, "pretrain": recipe.pretrain,
             "concept": concept.strip().lower(), "world": recipe.world, "seed": seed, "version": erase.__version__}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def retrained_concept_reference(model, recipe: Recipe, concept: str, seed: int
                                ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(retrained denoiser, record) for a concept of an embedded text-to-image world: random weights seeded as
    `erase pretrain` seeds them, trained with the recipe's `pretrain` section on the world's images without the
    concept; cached in <erase cache>/retrain-concept/<key>/ like the class reference. `model`: the original's
    denoiser (its class reads the cached weights). The text encoder is not trained (frozen at its seeded
    initialisation, as in pretraining), so the reference keeps the original's."""
    from erase.pretraining.generators import train_generator_from_scratch

    def train() -> tuple[torch.nn.Module, dict[str, Any]]:
        dataset, images = without_concept(concept)
        bundle, result = train_generator_from_scratch(recipe, dataset, seed)
        return bundle.denoiser, {"steps": result.history[-1]["step"] if result.history else 0, "seed": seed,
                                 "left_out": concept, "train_images": images, "pretrain": recipe.pretrain,
                                 "seconds": round(result.prepare_seconds + result.train_seconds, 2),
                                 "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    return cached_retraining("retrain-concept", concept_cache_key(recipe, concept, seed), CONCEPT_RECORD,
                             type(model), train)
