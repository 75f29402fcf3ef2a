"""`erase list`: what this installation knows: models, methods, selections, objectives, metrics, worlds."""
from __future__ import annotations

from erase.config import load_recipe, recipe_names
from erase.data.worlds import world_names
from erase.methods import method_class, method_names
from erase.methods.selection import selection_class, selection_names
from erase.tasks.base import OBJECTIVES
from erase.tasks.classification import ClassificationTask
from erase.tasks.denoising import DenoisingTask

METRICS = {
    "unlearning_accuracy": "1 - probe accuracy on samples of the forgotten target (higher = more forgotten)",
    "retained_accuracy": "mean probe accuracy on samples of every retained class",
    "per_class_accuracy": "probe accuracy on samples of each class",
    "fid_probe": "Frechet distance of retained-class samples vs real images, on the probe's features "
                 "(when clean-fid's Inception weights are absent)",
    "fid_clean, kid": "clean-fid's FID and KID (Inception, mode clean) of retained-class samples vs real images, "
                      "when its weights are local (--inception-weights, $ERASE_INCEPTION or /tmp)",
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
    uses = "" if cls.uses_forget or cls.objective else " (no forget objective: --objective is ignored)"
    return (f"  {name:<12} objective={cls.objective or '-'} params={cls.params}: {cls.summary}{uses}\n"
            f"  {'':<12} defaults: {defaults}")


def _composition_lines() -> list[str]:
    """Which objectives each task defines and where each parameter selection applies."""
    tasks = {"denoising (ddpm, dit, text-to-image)": DenoisingTask.objectives,
             "classification": ClassificationTask.objectives}
    lines = [f"objectives (--objective): {', '.join(OBJECTIVES)}"]
    lines += [f"  {task:<38} {', '.join(objectives)}" for task, objectives in tasks.items()]
    lines.append("parameter selections (--params):")
    for name in selection_names():
        cls = selection_class(name)
        settings = ", ".join(f"{k}={v}" for k, v in cls.defaults.items())
        lines.append(f"  {name:<16} {cls.summary}; {cls.works_on}" + (f"; settings: {settings}" if settings else ""))
    lines.append("  every update rule (--method) combines with every objective its task defines and every selection "
                 "its model supports, e.g. --method salun --objective esd, --method igs --params saliency")
    return lines


def _recipe_default_lines() -> list[str]:
    """Per-model method defaults (`methods.<name>` in pipelines/<model>.yaml), which override the above."""
    lines = []
    for name in recipe_names():
        methods = load_recipe(name).methods or {}
        for method, settings in sorted(methods.items()):
            text = ", ".join(f"{k}={v}" for k, v in settings.items())
            lines.append(f"  {name:<16} {method:<16} {text}")
    return lines


def listing() -> str:
    lines = ["models (--model):", *(_model_line(n) for n in recipe_names()), "",
             "methods (--method):", *(_method_line(n) for n in method_names()), "",
             "recipe defaults per model (pipelines/<model>.yaml `methods:`; the command line overrides them):",
             *_recipe_default_lines(), "",
             *_composition_lines(), "",
             "metrics:", *(f"  {k:<30} {v}" for k, v in METRICS.items()), "",
             f"embedded worlds: {', '.join(world_names())}"]
    return "\n".join(lines)


def main(args, command_line: str) -> int:
    print(listing())
    return 0
