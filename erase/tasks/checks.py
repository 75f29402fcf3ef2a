"""The cheap held-out checks of `--steps auto` (erase/auto_steps.py), one per kind of task.

Each is a callable `check(model) -> (ua, retained)`, both in [0, 1], run in eval mode between training steps
on the weights being trained; it must draw no global randomness (seeded generators only), so that a run with
checks trains exactly as one without them.

- classifiers: UA on (a fixed slice of) the forget set, accuracy on a fixed slice of the test set (without
  the forgotten classes when classes are forgotten), so the retained score is held out from training;
- class-conditional generators: the probe on a few dozen samples of the forgotten classes and of the others,
  at the recipe's sampling settings (its guidance), with seeds apart from the evaluation's;
- text-to-image models: the concept judge on a few samples of the forget prompts and of the other prompts.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

CLASSIFIER_CHECKS = 10  # checks over a budget: a classifier's check is a forward pass over ~1000 images
GENERATOR_CHECKS = 5  # sampling costs a few training steps each
CHECK_SLICE = 512  # classifiers: samples of the forget set and of the held-out set
GENERATOR_FORGET_SAMPLES = 32  # per forgotten class
GENERATOR_RETAINED_SAMPLES = 36  # over the retained classes
MAX_RETAINED_CLASSES = 12
SEED_OFFSET = 7_919  # check samples differ from the evaluation's (same seed): they are held out from it


def fixed_slice(dataset, limit: int, seed: int):
    """At most `limit` samples of `dataset`, drawn once with `seed` (the whole set when it is smaller)."""
    if len(dataset) <= limit:
        return dataset
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit]
    mask = torch.zeros(len(dataset), dtype=torch.bool)
    mask[chosen] = True
    return dataset.subset(mask)


def classifier_check(forget_set, held_out, seed: int = 0, limit: int = CHECK_SLICE, batch_size: int = 512):
    """UA on the forget set and accuracy on the held-out set, each a fixed slice of at most `limit`."""
    from erase.evaluate.classification import accuracy, predict_probs

    forget = fixed_slice(forget_set, limit, seed + SEED_OFFSET)
    retained = fixed_slice(held_out, limit, seed + SEED_OFFSET + 1)

    def check(model) -> tuple[float, float]:
        return 1 - accuracy(*predict_probs(model, forget, batch_size)), \
            accuracy(*predict_probs(model, retained, batch_size))

    return check


def check_counts(num_classes: int, forget: Sequence[int], seed: int,
                 forget_samples: int = GENERATOR_FORGET_SAMPLES,
                 retained_samples: int = GENERATOR_RETAINED_SAMPLES) -> dict[int, int]:
    """Samples per class of a generator check: `forget_samples` of each forgotten class, and
    `retained_samples` spread over the retained classes (at most MAX_RETAINED_CLASSES, drawn with `seed`)."""
    from erase.data.generated import pick_classes

    retained = pick_classes(num_classes, list(forget), MAX_RETAINED_CLASSES, seed)
    each = max(2, math.ceil(retained_samples / max(1, len(retained))))
    return {c: forget_samples if c in forget else each for c in sorted(list(forget) + list(retained))}


def generator_check(bundle, probe, forget: Sequence[int], seed: int, batch_size: int = 250):
    """The probe's UA on the forgotten classes and its mean accuracy on the retained ones, on the check's
    samples (erase.evaluate.probe: sample j of a class always gets the same seed)."""
    from erase.evaluate.probe import class_metrics, generate_for_classes, predict

    recipe = bundle.recipe
    counts = check_counts(recipe.num_classes, forget, seed)

    def check(model) -> tuple[float, float]:
        images, labels = generate_for_classes(bundle.pipeline, counts, seed + SEED_OFFSET, recipe.sampling,
                                              batch_size, desc="check")
        metrics = class_metrics(predict(probe, images), labels, forget, recipe.class_names)
        return metrics["unlearning_accuracy"], metrics["retained_accuracy"]

    return check
