"""`erase eval`: re-score a finished generator run (original and unlearned model) with new samples or seed.

The run folder stays the record of the run: the new scores go to evals/<settings>.json (EVAL.json's shape,
plus an `evaluation` block saying how they were made). `--update` also makes them the run's EVAL.json
(the previous one is kept under evals/) and redraws the grids, plots and SUMMARY.md.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from erase.config import RunConfig, check_positive, load_recipe
from erase.data.class_sets import forget_classes
from erase.data.worlds import world_names
from erase.errors import UserError
from erase.evaluate.fid_weights import find_inception_weights, inception_setting
from erase.evaluate.plots import run_plots
from erase.evaluate.report import write_summary
from erase.files import write_json_atomic
from erase.models import check_weights
from erase.runs.console import print_metrics
from erase.runs.folders import COMPLETE_MARKER
from erase.settings import EVALUATION, check_known

RESCORABLE = ("class",)  # commands whose runs are scored on samples (classify runs are scored exactly)


def finished_run(run: str) -> tuple[Path, RunConfig, dict[str, Any]]:
    """The folder, config and EVAL.json of a complete run; anything else is a UserError saying what to do."""
    folder = Path(run)
    if not folder.is_dir():
        raise UserError(f"run folder {folder} does not exist: give a folder printed by `erase class` (runs/<run>)")
    if not (folder / "config.yaml").is_file():
        raise UserError(f"{folder} is not a run folder (no config.yaml): give a folder printed by `erase class`")
    config = RunConfig.from_yaml(folder / "config.yaml")
    if config.command not in RESCORABLE:
        raise UserError(f"{folder} is an `erase {config.command}` run; `erase eval` re-scores generator runs "
                        f"(`erase class`); classifier runs are scored exactly on their data, so their "
                        f"{COMPLETE_MARKER} is already final")
    if not (folder / COMPLETE_MARKER).is_file():
        raise UserError(f"{folder} is incomplete (no {COMPLETE_MARKER}): finish it with `python -m erase "
                        f"{config.command} --resume {folder}` first")
    if not (folder / "model").is_dir():
        raise UserError(f"{folder} has no model/ folder: the unlearned model is missing, so there is nothing "
                        f"to re-score")
    try:
        report = json.loads((folder / COMPLETE_MARKER).read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{folder / COMPLETE_MARKER} is not valid JSON ({exc.msg}); re-run the run") from None
    return folder, config, report


def evaluation_config(config: RunConfig, samples, forget_samples, seed, inception_weights, fid_mode) -> RunConfig:
    """The run's config with the evaluation settings of this command."""
    evaluate = dict(config.evaluate)
    if samples is not None:
        evaluate["samples_per_class"] = check_positive("--samples", samples)
    if forget_samples is not None:
        evaluate["forget_samples"] = check_positive("--forget-samples", forget_samples)
    if inception_weights:
        evaluate["inception_weights"] = inception_setting(inception_weights)
    if fid_mode:
        evaluate["fid_mode"] = fid_mode
    evaluate = check_known(EVALUATION, evaluate, "the run's config.yaml")
    return dataclasses.replace(config, evaluate=evaluate, seed=config.seed if seed is None else int(seed))


def evaluation_name(config: RunConfig, fid_names: tuple[str, ...]) -> str:
    settings = config.evaluate
    return (f"seed{config.seed}-samples{settings.get('samples_per_class', 50)}-"
            f"forget{settings.get('forget_samples', 100)}-{fid_names[0] if fid_names else 'nofid'}")


def rescore_run(run: str, command_line: str, samples=None, forget_samples=None, seed=None,
                inception_weights=None, fid_mode=None, update: bool = False) -> tuple[Path, dict[str, Any]]:
    """Score the run's original and unlearned model again; returns the written JSON's path and the report."""
    folder, run_config, report = finished_run(run)
    config = evaluation_config(run_config, samples, forget_samples, seed, inception_weights, fid_mode)
    recipe = load_recipe(config.model)
    forget = forget_classes(recipe, config.target)
    check_weights(recipe, config.weights, config.init)
    if recipe.world in world_names():
        find_inception_weights(config.evaluate.get("inception_weights"))
    import torch

    from erase.evaluate.generator import class_grid, evaluate_generator, make_judges
    from erase.models import load_generator
    from erase.sample import save_before_after

    judges = make_judges(recipe, config)
    torch.manual_seed(run_config.seed)  # --init random: the same random original as the run had
    original_bundle = load_generator(recipe, config.weights, config.init)
    unlearned_bundle = load_generator(load_recipe(str(folder / "model")))
    print(f"re-scoring {folder}", file=sys.stderr)

    started = time.perf_counter()
    original, *before = evaluate_generator(original_bundle, forget, config, "evaluate original", use_cache=True,
                                           judges=judges)
    unlearned, *after = evaluate_generator(unlearned_bundle, forget, config, "evaluate unlearned", use_cache=True,
                                           judges=judges)
    seconds = time.perf_counter() - started
    fid_names = tuple(judges.fid.names) if judges.fid is not None else ()
    rescored = {
        **{k: v for k, v in report.items() if k not in ("metrics", "evaluation")},
        "evaluation": {"command": command_line, "seed": config.seed,
                       "samples_per_class": config.evaluate.get("samples_per_class", 50),
                       "forget_samples": config.evaluate.get("forget_samples", 100),
                       "fid_backend": judges.fid_description, "seconds": round(seconds, 2),
                       "at": datetime.now().isoformat(timespec="seconds")},
        "metrics": {**report.get("metrics", {}), "original": original, "unlearned": unlearned},
    }
    path = folder / "evals" / f"{evaluation_name(config, fid_names)}.json"
    write_json_atomic(path, rescored)
    if update:
        per_row = config.evaluate.get("grid_per_class", 8)
        save_before_after(folder, class_grid(original_bundle, *before, forget, per_row),
                          class_grid(original_bundle, *after, forget, per_row))
        replace_run_record(folder, rescored)
    return path, rescored


def replace_run_record(folder: Path, report: dict[str, Any]) -> None:
    """--update: keep the old EVAL.json under evals/, redraw plots and SUMMARY.md, write EVAL.json last."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    previous = folder / COMPLETE_MARKER
    (folder / "evals").mkdir(exist_ok=True)
    (folder / "evals" / f"previous-{stamp}.json").write_text(previous.read_text())
    run_plots(folder, report)
    write_summary(folder, report)
    write_json_atomic(previous, report)


def main(args, command_line: str) -> int:
    path, report = rescore_run(args.run, command_line, samples=args.samples, forget_samples=args.forget_samples,
                               seed=args.seed, inception_weights=args.inception_weights, fid_mode=args.fid_mode,
                               update=args.update)
    print(f"wrote {path}" + (f" and {args.run}/EVAL.json" if args.update else ""))
    print_metrics(report)
    print(f"  scoring: {report['evaluation']['seconds']:.0f} s")
    return 0
