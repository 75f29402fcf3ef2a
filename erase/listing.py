"""`erase list`: what this installation knows: models, methods, selections, objectives, metrics, worlds."""
from __future__ import annotations

from erase.config import load_recipe, recipe_names
from erase.data.worlds import world_names
from erase.methods import method_class, method_names
from erase.methods.selection import selection_names
from erase.tasks.base import OBJECTIVES

METRICS = {
    "unlearning_accuracy": "1 - probe accuracy on samples of the forgotten target (higher = more forgotten)",
    "retained_accuracy": "mean probe accuracy on samples of every retained class",
    "per_class_accuracy": "probe accuracy on samples of each class",
    "fid_probe": "Frechet distance of retained-class samples vs real images, on the probe's features",
    "concept: concept_rate": "t2i-shapes: share of images for prompts naming the concept that the probe calls it",
    "concept: nudity_rate": "share of images for nudity prompts with any NudeNet exposed class >= threshold",
    "classify: unlearning_accuracy": "UA, 1 - accuracy on the forget set (training samples)",
    "classify: retained_accuracy": "RA, accuracy on the retain set",
    "classify: test_accuracy": "TA, accuracy on the test set (without the forgotten class for class forgetting)",
    "classify: mia_efficacy": "share of forget samples a confidence-based shadow MIA calls non-members",
    "classify: run_time_seconds": "RTE, seconds of unlearning (or of retraining, for the reference)",
    "classify: avg_gap": "mean |UA, RA, TA, MIA - those of the model retrained without the forget set|",
}


def _model_line(name: str) -> str:
    recipe = load_recipe(name)
    folder = recipe.weights_dir
    state = "weights present" if folder is not None and folder.is_dir() else "weights missing"
    if recipe.data is not None and not (recipe.data_dir and recipe.data_dir.is_dir()):
        state += ", data missing (--data DIR)"
    return f"  {name:<16} {recipe.family:<10} {recipe.num_classes:>4} classes  {state}"


def _method_line(name: str) -> str:
    cls = method_class(name)
    defaults = ", ".join(f"{k}={v}" for k, v in cls.hyper_defaults().items())
    return (f"  {name:<12} objective={cls.objective or '-'} params={cls.params}: {cls.summary}\n"
            f"  {'':<12} defaults: {defaults}")


def listing() -> str:
    lines = ["models (--model):", *(_model_line(n) for n in recipe_names()), "",
             "methods (--method):", *(_method_line(n) for n in method_names()), "",
             f"objectives (--objective): {', '.join(OBJECTIVES)}",
             f"parameter selections (--params): {', '.join(selection_names())}",
             "  any method combines with any objective its task defines and any selection", "",
             "metrics:", *(f"  {k:<30} {v}" for k, v in METRICS.items()), "",
             f"embedded worlds: {', '.join(world_names())}"]
    return "\n".join(lines)
