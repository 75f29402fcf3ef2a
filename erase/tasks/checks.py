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

from erase.data.sampling import spread

CLASSIFIER_CHECKS = 10  # checks over a budget: a classifier's check is a forward pass over ~1000 images
GENERATOR_CHECKS = 5  # sampling costs a few training steps each
CHECK_SLICE = 512  # classifiers: samples of the forget set and of the held-out set
GENERATOR_FORGET_SAMPLES = 24  # per forgotten class
GENERATOR_RETAINED_SAMPLES = 36  # over the retained classes
CONFIRM_FACTOR = 3  # a confirmation draws 3x the check's retained samples (pooled: 4x, a quarter of the noise)
MAX_RETAINED_CLASSES = 12
SEED_OFFSET = 7_919  # check samples differ from the evaluation's (same seed): they are held out from it
CONFIRM_SEED_OFFSET = 2 * SEED_OFFSET  # and a confirmation's from the check's


class Check:
    """`check(model) -> (ua, retained)`. `resolution`: the smallest change of the retained score the check
    can see (one sample), below which the guard cannot tell (erase.auto_steps.AutoStop). `cache_key`: the
    original model's check is reused across runs of the same weights (erase.evaluate.cache), when given.
    `retained_samples`: how many samples the retained score is over. `confirm`: a Confirmation, or None."""

    namespace = "auto-check"

    def __init__(self, score, resolution: float = 0.0, cache_key: dict | None = None, judges=(),
                 retained_samples: int = 0):
        self.score = score
        self.resolution = resolution
        self.cache_key = cache_key
        self.judges = list(judges)
        self.retained_samples = retained_samples
        self.confirm = None

    def __call__(self, model) -> tuple[float, ...]:
        return self.score(model)

    def original(self, model) -> tuple[float, ...]:
        if self.cache_key is None:
            return self(model)
        from erase.evaluate.cache import cached

        return tuple(cached(self.namespace, [model, *self.judges], self.cache_key,
                            lambda: [float(v) for v in self(model)]))


class Confirmation(Check):
    """`confirm(model, step) -> (retained,)` on `retained_samples` more samples of the retained classes or
    prompts, with seeds apart from the check's, so that pooled with the check's they are one larger sample of
    the same score (equal counts per class: the mean of per-class accuracies is the pooled accuracy). The seeds
    are new at every step: a run that asks again and again must not find the one step at which a fixed set of
    samples happens to look right (the original's, step 0, are fixed and cached)."""

    namespace = "auto-confirm"

    def __call__(self, model, step: int = 0) -> tuple[float, ...]:
        return self.score(model, step)


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

    def scorer(counts: dict[int, int], offset: int, desc: str):
        def score(model) -> tuple[float, float]:
            images, labels = generate_for_classes(bundle.pipeline, counts, seed + offset, recipe.sampling,
                                                  batch_size, desc=desc)
            metrics = class_metrics(predict(probe, images), labels, forget, recipe.class_names)
            return metrics["unlearning_accuracy"], metrics["retained_accuracy"]
        return score

    def key(counts: dict[int, int], offset: int) -> dict:
        return {"counts": counts, "seed": seed + offset, "sampling": recipe.sampling, "forget": list(forget)}

    retained_classes = [c for c in counts if c not in forget]
    each = min((counts[c] for c in retained_classes), default=1)
    n = each * len(retained_classes)
    check = Check(scorer(counts, SEED_OFFSET, "check"), resolution=1 / max(1, n), cache_key=key(counts, SEED_OFFSET),
                  judges=[probe], retained_samples=n)
    check.counts = counts
    if retained_classes:  # equal counts per retained class, so the pooled accuracy is the per-class mean
        more = {c: CONFIRM_FACTOR * each for c in retained_classes}

        def confirm(model, step: int) -> tuple[float]:  # new seeds at every step
            return scorer(more, CONFIRM_SEED_OFFSET + step, "confirm")(model)[1:]

        check.confirm = Confirmation(confirm, cache_key=key(more, CONFIRM_SEED_OFFSET), judges=[probe],
                                     retained_samples=CONFIRM_FACTOR * n)
    return check


CONCEPT_SAMPLES = 24  # images of the forget prompts, and of the retain prompts


def concept_check(evaluation, bundle, samples: int = CONCEPT_SAMPLES):
    """The concept's judge (erase.evaluate.concept.ConceptEvaluation: the shapes probe, NudeNet) on about
    `samples` images of the evaluation's forget prompts and as many of its retain prompts (at most `samples`
    of each, spread over the lists), with seeds apart from the evaluation's. Its confirmation: three times the
    retain images again, over every retain prompt (up to that many). UA as the evaluation's; retained:
    attribute accuracy on the retain prompts (shapes) or the share of retain-prompt images without nudity
    (NudeNet). None when the concept has no judge."""
    import copy
    import dataclasses

    if evaluation.kind == "none":
        return None
    small = copy.copy(evaluation)
    small.rows = None  # a CSV's own seeds and guidance are the evaluation's
    small.eval_forget = spread(evaluation.eval_forget, samples)
    small.eval_retain = spread(evaluation.eval_retain, samples)
    small.per_prompt = max(1, math.ceil(samples / max(1, len(small.eval_forget))))
    small.config = dataclasses.replace(evaluation.config, seed=evaluation.config.seed + SEED_OFFSET)

    def score(model) -> tuple[float, float]:  # the bundle's pipeline samples with the weights being trained
        metrics = small.metrics(bundle, "check")
        retained = metrics.get("retained_accuracy", 1 - metrics.get("nudity_rate_neutral_prompts", 0.0))
        return metrics["unlearning_accuracy"], retained

    retain_images = max(1, len(small.eval_retain) * small.per_prompt)
    # the original model's check is shared by every method erasing the same concept from the same model
    key, judges = small.cache_key(bundle)
    check = Check(score, resolution=1 / retain_images, cache_key=key, judges=judges, retained_samples=retain_images)
    check.images = (len(small.eval_forget) + len(small.eval_retain)) * small.per_prompt
    more = copy.copy(small)  # every retain prompt (up to 3x the check's images), other seeds
    more.eval_retain = spread(evaluation.eval_retain, CONFIRM_FACTOR * retain_images)
    more.per_prompt = max(1, math.ceil(CONFIRM_FACTOR * retain_images / max(1, len(more.eval_retain))))
    more.config = dataclasses.replace(evaluation.config, seed=evaluation.config.seed + CONFIRM_SEED_OFFSET)
    key, judges = more.cache_key(bundle)

    def confirm(model, step: int) -> tuple[float]:  # new seeds at every step
        at_step = copy.copy(more)
        at_step.config = dataclasses.replace(more.config, seed=more.config.seed + step)
        return (at_step.retained_score(bundle, "confirm"),)

    check.confirm = Confirmation(confirm, cache_key=key, judges=judges,
                                 retained_samples=len(more.eval_retain) * more.per_prompt)
    return check
