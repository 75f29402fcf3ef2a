"""`erase list`: what this installation knows: models, methods with their settings, selections, objectives,
metrics, worlds. `erase list --settings`: every setting as markdown tables (docs/settings.md)."""
from __future__ import annotations

from typing import Any, Iterable

from erase.attacks import ATTACKS, attack_module
from erase.config import load_recipe, recipe_names
from erase.data.worlds import world_names
from erase.methods import method_class, method_names
from erase.methods.base import COMMON_SETTINGS
from erase.methods.selection import selection_class, selection_names
from erase.auto_steps import SETTINGS as AUTO_SETTINGS
from erase.settings import EVALUATION, TRAINING, Setting
from erase.tasks.base import OBJECTIVES

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
    "concept: clip_score": "with --clip DIR: mean 100 * max(cos(image, prompt), 0) over the retained prompts' images",
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


def shown_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):  # a list of numbers, as typed on the command line
        return ",".join(f"{v:g}" for v in value)
    return str(value)


def _setting_lines(settings: Iterable[Setting], indent: int) -> list[str]:
    return [f"{'':<{indent}}{s.name + '=' + shown_value(s.default):<28} {s.allowed():<30} {s.help}"
            for s in settings]


def _method_lines(name: str) -> list[str]:
    cls = method_class(name)
    uses = "" if cls.uses_forget or cls.objective else " (no forget objective: --objective is ignored)"
    return [f"  {name:<16} objective={cls.objective or '-'} params={cls.params}: {cls.summary}{uses}",
            *_setting_lines(cls.own_settings().values(), 19)]


def _composition_lines() -> list[str]:
    """Which objectives each task defines and where each parameter selection applies."""
    from erase.tasks.classification import ClassificationTask
    from erase.tasks.denoising import DenoisingTask

    tasks = {"denoising (ddpm, dit, text-to-image)": DenoisingTask.objectives,
             "classification": ClassificationTask.objectives}
    lines = [f"objectives (--objective): {', '.join(OBJECTIVES)}"]
    lines += [f"  {task:<38} {', '.join(objectives)}" for task, objectives in tasks.items()]
    lines.append("parameter selections (--params; their settings with --set, like the method's):")
    for name in selection_names():
        cls = selection_class(name)
        lines.append(f"  {name:<16} {cls.summary}; {cls.works_on}")
        lines += _setting_lines(cls.settings, 19)
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
             "methods (--method) and their settings (--set KEY=VALUE: default, what is allowed):",
             *(line for n in method_names() for line in _method_lines(n)), "",
             "settings every method takes (--set):", *_setting_lines(COMMON_SETTINGS, 2), "",
             "recipe defaults per model (pipelines/<model>.yaml `methods:`; the command line overrides them):",
             *_recipe_default_lines(), "",
             *_composition_lines(), "",
             "metrics:", *(f"  {k:<30} {v}" for k, v in METRICS.items()), "",
             "attacks (`erase attack --attacks`; budgets: `erase list --settings`):",
             *(f"  {name:<12} {attack_module(name).summary}" for name in ATTACKS), "",
             f"embedded worlds: {', '.join(world_names())}"]
    return "\n".join(lines)


def _table(settings: Iterable[Setting]) -> list[str]:
    rows = ["| setting | default | allowed | what it does |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | `{shown_value(s.default)}` | {s.allowed()} | {s.help} |" for s in settings]
    return rows


def settings_markdown() -> str:
    """Every declared setting as markdown (docs/settings.md holds this output verbatim)."""
    lines = ["### Every method (`--set`)", "", *_table(COMMON_SETTINGS), ""]
    plain = [n for n in method_names() if not method_class(n).own_settings()]
    lines += [f"{', '.join(f'`{n}`' for n in plain)}: no settings of their own (the ones above, and their "
              f"parameter selection's).", ""]
    for name in method_names():
        cls = method_class(name)
        if cls.own_settings():
            lines += [f"### `{name}` (default params: `{cls.params}`)", "", *_table(cls.own_settings().values()), ""]
    for name in selection_names():
        cls = selection_class(name)
        if cls.settings:
            lines += [f"### Parameter selection `{name}` (`--params {name}`, `--set` as the method's)", "",
                      *_table(cls.settings), ""]
    lines += ["### Training (recipe `unlearn`, `methods.<name>`, `pretrain`)", "", *_table(TRAINING.values()), "",
              "### `--steps auto` (recipe `unlearn`, `methods.<name>`; `--target-ua`, `--max-retain-drop`)", "",
              *_table(AUTO_SETTINGS.values()), "",
              "### Evaluation (recipe `evaluate`; other keys pass unchecked)", "", *_table(EVALUATION.values())]
    for name in ATTACKS:
        module = attack_module(name)
        family = "; ".join(f"{family} models: " + ", ".join(f"{k}={shown_value(v)}" for k, v in values.items())
                           for family, values in getattr(module, "FAMILY_DEFAULTS", {}).items())
        lines += ["", f"### Attack `{name}` (`erase attack --set`)", "", *_table(module.settings)]
        lines += ["", f"Defaults of {family}."] if family else []
    return "\n".join(lines)


def main(args, command_line: str) -> int:
    print(settings_markdown() if getattr(args, "settings", False) else listing())
    return 0
