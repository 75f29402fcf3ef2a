"""What every benchmark needs for one (model, method): the model to train, its task, forget/retain data, the
trainer settings the command would use, and a scorer. Built from the same functions the commands use, so a
benchmark measures the product, not a copy of it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from erase.config import load_recipe
from erase.errors import UserError
from erase.methods import method_class, method_names
from erase.runs.resolve import build_method, resolve_config, train_settings

FORGET_CLASS = "3"
# Small, fixed evaluation budget for curves (the commands' defaults are larger).
CURVE_SAMPLES = {"samples_per_class": 10, "forget_samples": 50}


@dataclass
class Target:
    model_name: str
    method_name: str
    model: torch.nn.Module
    task: Any
    method: Any
    forget_set: Any
    retain_set: Any
    settings: Any
    score: Callable[[], dict[str, float]]  # {"unlearning_accuracy", "retained_accuracy"} of `model` now


def benchmark_methods() -> list[str]:
    """Registered methods that unlearn by training steps (not retrain, not update-log replays)."""
    names = []
    for name in method_names():
        cls = method_class(name)
        if cls.needs_steps and cls.settings_section == "unlearn":
            names.append(name)
    return names


def methods_for(model_name: str, methods: list[str]) -> list[str]:
    """The methods this model's task accepts (e.g. no ESD on a classifier), checked the way a command checks
    them: build the target and let the method and task refuse."""
    accepted = []
    for method in methods:
        try:
            target = load_target(model_name, method, steps=1)
            target.task.check_objective(target.method.objective)
            target.method.validate(target.model, target.forget_set, target.retain_set)
            accepted.append(method)
        except UserError:
            continue
    return accepted


def available_models(candidates=("ddpm-digits", "dit-digits", "digits-cnn")) -> list[str]:
    """Embedded models whose recipe and shipped weights are present in this checkout."""
    present = []
    for name in candidates:
        try:
            recipe = load_recipe(name)
        except UserError:
            continue
        if recipe.weights_dir is not None and recipe.weights_dir.is_dir():
            present.append(name)
    return present


def load_target(model_name: str, method_name: str, synthetic: bool = False, **overrides) -> Target:
    """`overrides`: steps / lr / batch_size / init / mixed_precision as on the command line. `synthetic`:
    random images in place of the world's (real-size speed measurements with `init="random"`)."""
    recipe = load_recipe(model_name)
    if recipe.family == "classifier":
        return _classifier_target(model_name, method_name, overrides)
    return _generator_target(model_name, method_name, overrides, synthetic)


def synthetic_images(recipe, count: int = 512, seed: int = 0):
    from erase.data.datasets import LabelledImages

    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, recipe.channels, recipe.resolution, recipe.resolution, generator=generator) * 2 - 1
    labels = torch.randint(0, recipe.num_classes, (count,), generator=generator)
    return LabelledImages(images, labels, list(recipe.class_names))


def _generator_target(model_name: str, method_name: str, overrides: dict, synthetic: bool) -> Target:
    from erase.data import load_world, split_by_classes
    from erase.data.class_sets import forget_classes
    from erase.evaluate.generator import evaluate_generator
    from erase.models import load_generator
    from erase.tasks.denoising import denoising_task

    config, recipe = resolve_config("class", model_name, method_name, [FORGET_CLASS], evaluate=CURVE_SAMPLES,
                                    **overrides)
    forget = forget_classes(recipe, config.target)
    torch.manual_seed(config.seed)
    bundle = load_generator(recipe, config.weights, config.init)
    data = synthetic_images(recipe) if synthetic else load_world(recipe.world, "train")
    forget_set, retain_set = split_by_classes(data, forget)
    task = denoising_task(bundle)

    def score() -> dict[str, float]:
        was_training = bundle.denoiser.training
        bundle.denoiser.eval()
        metrics, _, _ = evaluate_generator(bundle, forget, config, "score")
        bundle.denoiser.train(was_training)
        return {k: metrics[k] for k in ("unlearning_accuracy", "retained_accuracy")}

    return Target(model_name, method_name, bundle.denoiser, task, build_method(config), forget_set, retain_set,
                  _quiet(train_settings(config)), score)


def _classifier_target(model_name: str, method_name: str, overrides: dict) -> Target:
    from erase.commands.classify import load_classifier, load_data, resolve_classify_config
    from erase.data.forget import ForgetSpec
    from erase.evaluate.classification import evaluate_classifier
    from erase.tasks.classification import classification_task

    config, recipe = resolve_classify_config("classify", model_name, method_name, ForgetSpec("class", FORGET_CLASS),
                                             **overrides)
    data = load_data(recipe, config)
    torch.manual_seed(config.seed)
    bundle = load_classifier(recipe, config.weights, config.init)

    def score() -> dict[str, float]:
        was_training = bundle.model.training
        bundle.model.eval()
        metrics = evaluate_classifier(bundle.model, data.forget, data.retain, data.test, data.class_names)
        bundle.model.train(was_training)
        return {k: metrics[k] for k in ("unlearning_accuracy", "retained_accuracy")}

    return Target(model_name, method_name, bundle.model, classification_task(recipe), build_method(config),
                  data.forget, data.retain, _quiet(train_settings(config)), score)


def _quiet(settings):
    return dataclasses.replace(settings, progress=False, checkpoint_every=0)
