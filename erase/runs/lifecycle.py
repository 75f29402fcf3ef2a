"""The life of a run folder, shared by `erase class`, `concept` and `classify`: create it, train and evaluate,
save the model, the common head of EVAL.json, finish (EVAL.json last) or resume.

The commands differ only in data, evaluation and reference models; everything here is the same for all of them.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from erase.config import Recipe, RunConfig
from erase.evaluate.plots import run_plots
from erase.evaluate.report import write_summary
from erase.files import write_json_atomic, write_yaml_atomic
from erase.runs.folders import COMPLETE_MARKER, create_run_folder, default_run_name
from erase.runs.processes import is_main, wait_for_everyone
from erase.runs.reference import is_reference_run, retrained_reference
from erase.runs.resolve import train_settings
from erase.sample import save_before_after, save_image_atomic
from erase.train import unlearn


def save_model(bundle, folder: Path) -> None:
    """Save into a temporary sibling, then rename: model/ is either complete or absent."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    bundle.save(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def report_head(config: RunConfig, method, command_line: str, target: dict[str, Any]) -> dict[str, Any]:
    """The keys every EVAL.json starts with (DESIGN.md: add keys freely, never rename these)."""
    report = {
        "command": command_line,
        "model": config.model,
        "method": config.method,
        "objective": method.objective,
        "params": method.params,
        "target": target,
        "steps": config.steps,
        "seed": config.seed,
        "settings": {"lr": config.lr, "batch_size": config.batch_size, **config.training, **method.hyper},
    }
    if method.run_report():
        report["method_report"] = method.run_report()
    return report


def add_auto_report(report: dict[str, Any], result) -> None:
    """`--steps auto` (result: erase.train.TrainResult): `steps` is the kept model's, `auto_steps` holds the
    checks, the step stopped at and what was kept, `seconds.checks` their time and its share of unlearning."""
    if result.auto is None:
        return
    auto = result.auto
    report["steps"] = auto["kept_step"]
    report["auto_steps"] = auto
    seconds = report["seconds"]
    seconds["checks"] = auto["seconds"]
    seconds["checks_share"] = round(auto["seconds"] / max(1e-9, seconds["prepare"] + seconds["unlearn"]), 3)


def new_run_folder(config: RunConfig, recipe: Recipe, target_name: str, overwrite: bool) -> Path:
    """Create the run folder and write config.yaml into it (main process only: see erase/runs/processes.py)."""
    folder = create_run_folder(config.out, default_run_name(recipe.name, config.method, target_name), overwrite)
    write_yaml_atomic(folder / "config.yaml", config.to_dict())
    return folder


def finish_run(folder: Path, config: RunConfig, report: dict[str, Any], processes: int = 1) -> None:
    """Drop checkpoints unless kept, draw plots/, write SUMMARY.md, and EVAL.json last (it marks a complete run)."""
    report.setdefault("processes", processes)
    if not config.keep_checkpoints:
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    run_plots(folder, report)
    write_summary(folder, report)
    write_json_atomic(folder / COMPLETE_MARKER, report)


def unlearn_and_evaluate(run_folder: Path, config: RunConfig, bundle, task, method, forget_set, retain_set,
                         evaluate, target: dict[str, Any], command_line: str, started: float,
                         extra_report: dict[str, Any] | None = None, auto=None) -> dict[str, Any] | None:
    """The generator run: evaluate the original, unlearn, save model/, evaluate the unlearned model, write
    the before/after grids, SUMMARY.md and EVAL.json.

    `evaluate(bundle, desc, use_cache) -> (metrics, GridRows)`; `use_cache` is set for the original model,
    whose evaluation is the same computation in every run on those weights. Under `accelerate launch` every
    process trains and only the main one evaluates and writes (the others get None). `auto`
    (erase.auto_steps.AutoStop): `--steps auto`.
    """
    main = is_main()
    eval_started = time.perf_counter()
    if main:
        original, before = evaluate(bundle, "evaluate original", True)
        save_image_atomic(before.image("before"), run_folder / "grids" / "before.png")
    evaluate_seconds = time.perf_counter() - eval_started

    retrain_record, processes, result = None, 1, None
    if is_reference_run(config):  # the retrained reference: computed once per model and forget set, cached
        train_started = time.perf_counter()
        retrained, retrain_record = retrained_reference(bundle.denoiser, task, forget_set, retain_set,
                                                        bundle.recipe, config.model, config.seed,
                                                        run_folder / "checkpoints")
        bundle.denoiser.load_state_dict(retrained.state_dict())
        bundle.denoiser.eval()
        prepare_seconds, train_seconds = 0.0, time.perf_counter() - train_started
    else:
        result = unlearn(bundle.denoiser, task, method, forget_set, retain_set, train_settings(config, auto),
                         checkpoint_dir=run_folder / "checkpoints", history_path=run_folder / "history.jsonl",
                         auto=auto)
        prepare_seconds, train_seconds, processes = result.prepare_seconds, result.train_seconds, result.processes
    if not main:
        wait_for_everyone()
        return None
    save_model(bundle, run_folder / "model")

    eval_started = time.perf_counter()
    unlearned, after = evaluate(bundle, "evaluate unlearned", False)
    save_before_after(run_folder, before, after)
    evaluate_seconds += time.perf_counter() - eval_started

    report = {
        **report_head(config, method, command_line, target),
        **(extra_report or {}),
        "seconds": {"prepare": round(prepare_seconds, 2), "unlearn": round(train_seconds, 2),
                    "evaluate": round(evaluate_seconds, 2),
                    "total": round(time.perf_counter() - started, 2)},
        "metrics": {"original": original, "unlearned": unlearned},
    }
    if retrain_record is not None:
        report["retrain"] = retrain_record
    if result is not None:
        add_auto_report(report, result)
    finish_run(run_folder, config, report, processes=processes)
    wait_for_everyone()
    return report
