"""Pieces every unlearning command shares: config resolution, method and trainer settings, saving the
model, the common head of EVAL.json, and finishing or resuming a run folder.

`erase class` (erase/unlearn.py), `erase concept` (erase/concept.py) and `erase classify` (erase/classify.py)
differ only in data, evaluation and reference models; everything here is the same for all of them.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from erase.config import Recipe, RunConfig, check_positive, load_recipe
from erase.errors import UserError
from erase.evaluate.plots import run_plots
from erase.evaluate.report import write_summary
from erase.methods import make_method, method_class
from erase.runs import (COMPLETE_MARKER, create_run_folder, default_run_name, existing_run, write_json_atomic,
                        write_yaml_atomic)
from erase.train import TrainSettings, unlearn

TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainSettings)} - {"progress", "checkpoint_every",
                                                                      "mixed_precision"}
CORE_TRAIN = ("steps", "lr", "batch_size", "seed")


def method_section(recipe: Recipe, method: str) -> dict[str, Any]:
    """The recipe's defaults for `method`: `unlearn` < `methods.<name>`; methods that train from scratch
    (settings_section "pretrain") take the training settings of the recipe's `pretrain` section instead."""
    if method_class(method).settings_section == "pretrain":
        base = {k: v for k, v in recipe.pretrain.items() if k in TRAIN_FIELDS or k == "checkpoint_every"}
    else:
        base = dict(recipe.unlearn)
    return {**base, **recipe.methods.get(method, {})}


def check_steps(value: Any, allow_zero: bool) -> int:
    if allow_zero and str(value).strip() in ("0", "0.0"):
        return 0
    return check_positive("--steps", value)


def resolve_config(command: str, model: str, method: str, target: list[str], *, objective=None, params=None,
                   steps=None, lr=None, batch_size=None, seed=0, hyper: dict | None = None,
                   evaluate: dict | None = None, weights=None, init="pretrained", out=None,
                   checkpoint_every=None, keep_checkpoints=False, mixed_precision="no",
                   gradient_checkpointing=False, extra: dict | None = None,
                   recipe: Recipe | None = None) -> tuple[RunConfig, Recipe]:
    """Defaults from the method class < recipe `unlearn` < recipe `methods.<name>` < command line.

    `methods.<name>` may set `objective` and `params` too (the method's axes for this model family).
    `recipe`: an already adapted recipe of `model` (e.g. `concept --tiny`); default: load it by name."""
    recipe = recipe or load_recipe(model)
    cls = method_class(method)  # an unknown method name fails here, before anything else is read
    section = method_section(recipe, method)
    training = {k: v for k, v in section.items() if k in TRAIN_FIELDS and k not in CORE_TRAIN}
    if gradient_checkpointing:
        training["gradient_checkpointing"] = True
    # A recipe may also pick a method's objective and parameter selection for its family (SFR-on's reference
    # uses adaptive GA for CIFAR DDPMs, plain GA for DiT, a redirect loss for Stable Diffusion).
    axes = ("objective", "params")
    recipe_hyper = {k: v for k, v in section.items()
                    if k not in TRAIN_FIELDS and k != "checkpoint_every" and k not in axes}
    config = RunConfig(
        command=command, model=model, method=method, target=[str(t) for t in target],
        objective=objective or section.get("objective"), params=params or section.get("params"),
        steps=check_steps(steps if steps is not None else section.get("steps", 100), not cls.needs_steps),
        lr=check_positive("--lr", lr if lr is not None else section.get("lr", 1e-4), float),
        batch_size=check_positive("--batch-size", batch_size if batch_size is not None
                                  else section.get("batch_size", 32)),
        seed=int(seed), training=training, hyper={**recipe_hyper, **(hyper or {})},
        evaluate={**recipe.evaluate, **(evaluate or {})}, weights=weights, init=init, out=out,
        checkpoint_every=int(checkpoint_every if checkpoint_every is not None
                             else section.get("checkpoint_every", 0)),
        keep_checkpoints=keep_checkpoints, mixed_precision=mixed_precision, extra=dict(extra or {}),
    )
    build_method(config)  # validates objective, params and every hyperparameter name now, before any work
    return config, recipe


def build_method(config: RunConfig):
    return make_method(config.method, config.objective, config.params, **config.hyper)


def train_settings(config: RunConfig) -> TrainSettings:
    return TrainSettings(steps=config.steps, lr=config.lr, batch_size=config.batch_size, seed=config.seed,
                         checkpoint_every=config.checkpoint_every, mixed_precision=config.mixed_precision,
                         **config.training)


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


def new_run_folder(config: RunConfig, recipe: Recipe, target_name: str, overwrite: bool) -> Path:
    """Create the run folder and write config.yaml into it (main process only: see erase/processes.py)."""
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


def incomplete_run(run: str) -> tuple[Path, RunConfig]:
    """The folder and config of a run to resume; a complete run is refused."""
    folder = existing_run(run)
    if (folder / COMPLETE_MARKER).is_file():
        raise UserError(f"{folder} is already complete ({COMPLETE_MARKER} exists); nothing to resume")
    return folder, RunConfig.from_yaml(folder / "config.yaml")


def unlearn_and_evaluate(run_folder: Path, config: RunConfig, bundle, task, method, forget_set, retain_set,
                         evaluate, target: dict[str, Any], command_line: str, started: float,
                         extra_report: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The generator run: evaluate the original, unlearn, save model/, evaluate the unlearned model, write
    the before/after grids, SUMMARY.md and EVAL.json.

    `evaluate(bundle, desc, use_cache) -> (metrics, GridRows)`; `use_cache` is set for the original model,
    whose evaluation is the same computation in every run on those weights. Under `accelerate launch` every
    process trains and only the main one evaluates and writes (the others get None).
    """
    from erase.processes import is_main, wait_for_everyone
    from erase.reference import is_reference_run, retrained_reference
    from erase.sample import save_before_after, save_image_atomic

    main = is_main()
    eval_started = time.perf_counter()
    if main:
        original, before = evaluate(bundle, "evaluate original", True)
        save_image_atomic(before.image("before"), run_folder / "grids" / "before.png")
    evaluate_seconds = time.perf_counter() - eval_started

    retrain_record, processes = None, 1
    if is_reference_run(config):  # the retrained reference: computed once per model and forget set, cached
        train_started = time.perf_counter()
        retrained, retrain_record = retrained_reference(bundle.denoiser, task, forget_set, retain_set,
                                                        bundle.recipe, config.model, config.seed,
                                                        run_folder / "checkpoints")
        bundle.denoiser.load_state_dict(retrained.state_dict())
        bundle.denoiser.eval()
        prepare_seconds, train_seconds = 0.0, time.perf_counter() - train_started
    else:
        result = unlearn(bundle.denoiser, task, method, forget_set, retain_set, train_settings(config),
                         checkpoint_dir=run_folder / "checkpoints", history_path=run_folder / "history.jsonl")
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
    finish_run(run_folder, config, report, processes=processes)
    wait_for_everyone()
    return report
