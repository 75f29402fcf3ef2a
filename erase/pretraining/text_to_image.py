"""`erase pretrain t2i-shapes`: the shapes probe and the text-to-image model, from scratch, seeded.

The generator trains through the same trainer as unlearning (the `ft` method on all captioned images), with
the text encoder frozen at its seeded initialisation; the probe is a three-headed SmallCNN.
"""
from __future__ import annotations

import sys
import time

import torch

from erase.config import Recipe
from erase.data.datasets import LabelledImages, PromptImages
from erase.data.shapes import ATTRIBUTES, caption, combinations, load_shapes
from erase.evaluate.attributes import HEADS, attribute_accuracy, predict_attributes
from erase.evaluate.text import generate_for_prompts
from erase.methods import make_method
from erase.models.classifier import SmallCNN
from erase.pretraining.common import generator_record, save_generator, settings_from, write_folder
from erase.pretraining.generators import train_generator_from_scratch
from erase.tasks.classification import AttributeTask, shift_and_noise
from erase.train import unlearn


def train_shapes_probe(recipe: Recipe, seed: int) -> tuple[SmallCNN, dict]:
    section = recipe.pretrain.get("probe", {})
    train, test = load_shapes("train"), load_shapes("test")
    torch.manual_seed(seed)
    probe = SmallCNN(in_channels=3, num_classes=sum(HEADS))
    settings = settings_from({"optimizer": "adamw", "lr_schedule": "cosine", **section}, seed)
    started = time.perf_counter()
    data = LabelledImages(train.images, train.labels, list(ATTRIBUTES))
    unlearn(probe, AttributeTask(HEADS, augment=shift_and_noise()), make_method("ft"), None, data, settings,
            desc="train shapes probe")
    accuracy = attribute_accuracy(predict_attributes(probe, test.float_images()), test.labels)
    return probe, {"test_accuracy": accuracy, "steps": settings.steps,
                   "seconds": round(time.perf_counter() - started, 1)}


def captioned_images(adapter) -> PromptImages:
    data = load_shapes("train")
    return PromptImages(data.images, adapter.tokenize(data.captions))


def score_generator(bundle, probe, seed: int, per_prompt: int, batch_size: int) -> dict:
    """Probe accuracy of each attribute on images for every full caption (48 prompts)."""
    prompts, labels = [], []
    for shape, colour, texture in combinations():
        prompts.append(caption(shape, colour, texture))
        labels.append([ATTRIBUTES["shape"].index(shape), ATTRIBUTES["colour"].index(colour),
                       ATTRIBUTES["texture"].index(texture)])
    images, index = generate_for_prompts(bundle.pipeline, prompts, per_prompt, seed, bundle.recipe.sampling,
                                         batch_size, desc="score samples")
    return {"prompts": len(prompts), "images_per_prompt": per_prompt, "sampling": bundle.recipe.sampling,
            "accuracy": attribute_accuracy(predict_attributes(probe, images), torch.tensor(labels)[index])}


def pretrain_text_to_image(recipe: Recipe, seed: int, steps: int | None) -> dict:
    started = time.perf_counter()
    probe, probe_record = train_shapes_probe(recipe, seed)
    write_folder(recipe.probe_dir, lambda d: probe.save_pretrained(str(d), safe_serialization=True))
    print(f"probe: test accuracy {probe_record['test_accuracy']}", file=sys.stderr)

    bundle, result = train_generator_from_scratch(recipe, captioned_images, seed, steps)
    batch_size = recipe.evaluate.get("batch_size", 192)
    record = generator_record(recipe, seed, steps, result, started, probe=probe_record,
                              generated_probe_accuracy=score_generator(bundle, probe, seed, 8, batch_size))
    save_generator(recipe, bundle, record)
    return record
