"""Judging an unlearned model made elsewhere against its original (`erase eval --model U --original O`).

The result is a run folder like an unlearning run's, minus the training: config.yaml, grids/before.png and
after.png (same seeds), EVAL.json in the agreed shape, SUMMARY.md and plots/, so `erase compare` tables it
with erase's own runs. Both models are sampled with the original's settings and scored by the same judges
(erase/evaluate/generator.py for class-conditional models, erase/evaluate/concept.py for text-to-image).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from erase.config import Recipe, RunConfig
from erase.errors import UserError
from erase.runs.folders import COMPLETE_MARKER

TEXT_TO_IMAGE = ("sd",)


def model_kind(recipe: Recipe) -> str:
    if recipe.family == "classifier":
        return "classifier"
    return "text-to-image" if recipe.family in TEXT_TO_IMAGE else "class-conditional"


def check_same_kind(unlearned: Recipe, original: Recipe, unlearned_name: str, original_name: str) -> str:
    """Both models are generators of one kind with the same classes; returns that kind."""
    kinds = model_kind(unlearned), model_kind(original)
    if "classifier" in kinds:
        raise UserError(f"{unlearned_name if kinds[0] == 'classifier' else original_name} is a classifier: "
                        f"`erase eval --model` judges generators; classifiers are judged by `erase classify`")
    if kinds[0] != kinds[1]:
        raise UserError(f"{unlearned_name} is a {kinds[0]} model but {original_name} is a {kinds[1]} model: "
                        f"eval compares an unlearned model with the original it came from")
    if kinds[1] == "class-conditional" and [n.lower() for n in unlearned.class_names] != \
            [n.lower() for n in original.class_names]:
        raise UserError(f"{unlearned_name} draws classes {unlearned.class_names[:5]}... but {original_name} draws "
                        f"{original.class_names[:5]}...: they are not the same model's classes")
    return kinds[1]


def provenance(path: str) -> dict[str, Any]:
    """What the unlearned model's own run says of it, when it is an erase run's model/ folder."""
    run = Path(path).expanduser().resolve().parent
    if Path(path).name != "model" or not (run / COMPLETE_MARKER).is_file():
        return {}
    try:
        report = json.loads((run / COMPLETE_MARKER).read_text())
    except json.JSONDecodeError:
        return {}
    return {"run": str(run), **{k: report[k] for k in ("method", "objective", "params", "steps", "command")
                                if k in report}}


def class_metrics_pair(original, unlearned, forget: list[int], config: RunConfig):
    """(original metrics, unlearned metrics, before grid, after grid) on the same seeds and judges."""
    from erase.evaluate.generator import class_grid, evaluate_generator, make_judges

    judges = make_judges(original.recipe, config)
    per_row = config.evaluate.get("grid_per_class", 8)
    results = []
    for bundle, desc in ((original, "evaluate original"), (unlearned, "evaluate unlearned")):
        metrics, images, labels = evaluate_generator(bundle, forget, config, desc, use_cache=True, judges=judges)
        results.append((metrics, class_grid(original, images, labels, forget, per_row)))
    return results[0][0], results[1][0], results[0][1], results[1][1]


def concept_metrics_pair(original, unlearned, evaluation):
    before_metrics, before = evaluation(original, "evaluate original", True)
    after_metrics, after = evaluation(unlearned, "evaluate unlearned", True)
    return before_metrics, after_metrics, before, after


def judge(folder: Path, config: RunConfig, original, unlearned, score, target: dict[str, Any],
          command_line: str, started: float, extra: dict[str, Any]) -> dict[str, Any]:
    """Score both models (`score() -> (original, unlearned, before grid, after grid)`), then write the grids,
    plots, SUMMARY.md and EVAL.json (last) into the run folder."""
    from erase.runs.lifecycle import finish_run
    from erase.sample import save_before_after

    evaluate_started = time.perf_counter()
    before_metrics, after_metrics, before, after = score()
    save_before_after(folder, before, after)
    report = {
        "command": command_line, "model": config.model, "method": config.method,
        "objective": extra.get("provenance", {}).get("objective"), "params": extra.get("provenance", {}).get("params"),
        "target": target, "steps": extra.get("provenance", {}).get("steps", 0), "seed": config.seed,
        "unlearned_model": config.extra["unlearned"],
        **extra,
        "seconds": {"evaluate": round(time.perf_counter() - evaluate_started, 2),
                    "total": round(time.perf_counter() - started, 2)},
        "metrics": {"original": before_metrics, "unlearned": after_metrics},
    }
    finish_run(folder, config, report)
    return report
