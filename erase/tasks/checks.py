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
GENERATOR_FORGET_SAMPLES = 24  # per forgotten class
GENERATOR_RETAINED_SAMPLES = 36  # over the retained classes
MAX_RETAINED_CLASSES = 12
SEED_OFFSET = 7_919  # check samples differ from the evaluation's (same seed): they are held out from it


class Check:
    """`check(model) -> (ua, retained)`. `resolution`: the smallest change of the retained score the check
    can see (one sample), below which the guard cannot tell (erase.auto_steps.AutoStop). `cache_key`: the
    original model's check is reused across runs of the same weights (erase.evaluate.cache), when given."""

    def __init__(self, score, resolution: float = 0.0, cache_key: dict | None = None, judges=()):
        self.score = score
        self.resolution = resolution
        self.cache_key = cache_key
        self.judges = list(judges)

    def __call__(self, model) -> tuple[float, float]:
        return self.score(model)

    def original(self, model) -> tuple[float, float]:
        if self.cache_key is None:
            return self.score(model)
        from erase.evaluate.cache import cached

        ua, retained = cached("auto-check", [model, *self.judges], self.cache_key,
                              lambda: [float(v) for v in self.score(model)])
        return ua, retained


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

    def score(model) -> tuple[float, float]:
        return 1 - accuracy(*predict_probs(model, forget, batch_size)), \
            accuracy(*predict_probs(model, retained, batch_size))

    return Check(score, resolution=1 / max(1, len(retained)))


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

    def score(model) -> tuple[float, float]:
        images, labels = generate_for_classes(bundle.pipeline, counts, seed + SEED_OFFSET, recipe.sampling,
                                              batch_size, desc="check")
        metrics = class_metrics(predict(probe, images), labels, forget, recipe.class_names)
        return metrics["unlearning_accuracy"], metrics["retained_accuracy"]

    retained_classes = [c for c in counts if c not in forget]
    smallest = min((counts[c] for c in retained_classes), default=1)
    key = {"counts": counts, "seed": seed + SEED_OFFSET, "sampling": recipe.sampling, "forget": list(forget)}
    check = Check(score, resolution=1 / (smallest * max(1, len(retained_classes))), cache_key=key, judges=[probe])
    check.counts = counts
    return check


CONCEPT_SAMPLES = 24  # images of the forget prompts, and of the retain prompts


def concept_check(evaluation, bundle, samples: int = CONCEPT_SAMPLES):
    """The concept's judge (erase.evaluate.concept.ConceptEvaluation: the shapes probe, NudeNet) on about
    `samples` images of the evaluation's forget prompts and as many of its retain prompts, with seeds apart
    from the evaluation's. UA as the evaluation's; retained: attribute accuracy on the retain prompts (shapes)
    or the share of retain-prompt images without nudity (NudeNet). None when the concept has no judge."""
    import copy
    import dataclasses

    if evaluation.kind == "none":
        return None
    small = copy.copy(evaluation)
    small.rows = None  # a CSV's own seeds and guidance are the evaluation's
    small.eval_forget = evaluation.eval_forget[:samples]
    small.eval_retain = evaluation.eval_retain[:samples]
    small.per_prompt = max(1, math.ceil(samples / max(1, len(small.eval_forget))))
    small.config = dataclasses.replace(evaluation.config, seed=evaluation.config.seed + SEED_OFFSET)

    def score(model) -> tuple[float, float]:  # the bundle's pipeline samples with the weights being trained
        metrics = small.metrics(bundle, "check")
        retained = metrics.get("retained_accuracy", 1 - metrics.get("nudity_rate_neutral_prompts", 0.0))
        return metrics["unlearning_accuracy"], retained

    retain_images = max(1, len(small.eval_retain) * small.per_prompt)
    # the original model's check is shared by every method erasing the same concept from the same model
    key, judges = small.cache_key(bundle)
    check = Check(score, resolution=1 / retain_images, cache_key=key, judges=judges)
    check.images = (len(small.eval_forget) + len(small.eval_retain)) * small.per_prompt
    return check
