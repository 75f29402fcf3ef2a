"""`erase eval`: re-score a finished generator run, or judge an unlearned model made elsewhere.

`--run RUN`: the original and unlearned model of a finished run are scored again with new samples or seed.
The run folder stays the record of the run: the new scores go to evals/<settings>.json (EVAL.json's shape,
plus an `evaluation` block saying how they were made). `--update` also makes them the run's EVAL.json
(the previous one is kept under evals/) and redraws the grids, plots and SUMMARY.md.

`--model UNLEARNED --original ORIGINAL --forget C | --prompt CONCEPT`: both models are scored by the same
judges on the same seeds, into a new run folder that `erase compare` tables with erase's own runs
(erase/runs/external.py).
"""
from __future__ import annotations

import dataclasses
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
from erase.runs.folders import COMPLETE_MARKER, finished_report, run_folder_config
from erase.settings import EVALUATION, check_known

# commands whose runs are scored on samples (classify runs are scored exactly); eval: of class-conditional models
RESCORABLE = ("class", "eval")


def finished_run(run: str) -> tuple[Path, RunConfig, dict[str, Any]]:
    """The folder, config and EVAL.json of a complete run; anything else is a UserError saying what to do."""
    folder, config = run_folder_config(run, "give a folder printed by `erase class`")
    if config.command not in RESCORABLE:
        raise UserError(f"{folder} is an `erase {config.command}` run; `erase eval` re-scores generator runs "
                        f"(`erase class`); classifier runs are scored exactly on their data, so their "
                        f"{COMPLETE_MARKER} is already final")
    if config.command == "eval" and config.extra.get("kind") != "class-conditional":
        raise UserError(f"{folder} judged a text-to-image model: run `erase eval --model ... --prompt ...` again "
                        f"with the new settings")
    report = finished_report(folder, config.command)
    if config.command == "class" and not (folder / "model").is_dir():
        raise UserError(f"{folder} has no model/ folder: the unlearned model is missing, so there is nothing "
                        f"to re-score")
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
    from erase.runs.unlearned import unlearned_model
    from erase.sample import save_before_after

    judges = make_judges(recipe, config)
    torch.manual_seed(run_config.seed)  # --init random: the same random original as the run had
    original_bundle = load_generator(recipe, config.weights, config.init)
    unlearned_bundle = unlearned_model(folder, config, recipe)
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


def judge_options(args) -> dict[str, Any]:
    """The evaluation settings of `eval --model` (samples, FID backend, images per prompt)."""
    evaluate: dict[str, Any] = {}
    for option, key in (("samples", "samples_per_class"), ("forget_samples", "forget_samples"),
                        ("images_per_prompt", "images_per_prompt")):
        value = getattr(args, option)
        if value is not None:
            evaluate[key] = check_positive("--" + option.replace("_", "-"), value)
    if args.inception_weights:
        evaluate["inception_weights"] = inception_setting(args.inception_weights)
    if args.fid_mode:
        evaluate["fid_mode"] = args.fid_mode
    return evaluate


def judged_target(args, original, kind: str, eval_prompts: str | None):
    """What was forgotten: ([names], EVAL.json target, forgotten class ids or the concept's prompts)."""
    if kind == "class-conditional":
        given = [flag for flag, value in (("--prompt", args.prompt), ("--eval-prompts", args.eval_prompts),
                                          ("--images-per-prompt", args.images_per_prompt)) if value is not None]
        if given:
            raise UserError(f"{given[0]} is for text-to-image models; {args.original} is class-conditional: name "
                            f"the forgotten class with --forget")
        forget = forget_classes(original, args.forget or [])
        names = [original.class_names[c] for c in forget]
        return names, {"kind": "class", "value": forget[0] if len(forget) == 1 else forget,
                       "name": "+".join(names)}, forget
    from erase.data.prompts import check_concept, concept_prompts

    if args.forget:
        raise UserError(f"--forget names classes of class-conditional models; {args.original} is text-to-image: "
                        f"name the erased concept with --prompt")
    concept = check_concept(args.prompt)
    return [concept], {"kind": "concept", "value": concept, "name": concept}, \
        concept_prompts(original, concept, None, eval_prompts)


def judge_model(args, command_line: str) -> Path:
    """`eval --model U --original O`: everything is loaded and checked before the run folder exists."""
    from erase.runs.external import check_same_kind, class_metrics_pair, concept_metrics_pair, judge, provenance
    from erase.runs.unlearned import load_unlearned, unlearned_recipe
    from erase.runs.folders import check_out_folder

    started = time.perf_counter()
    if args.update:
        raise UserError("--update replaces a run's scores: use it with --run RUN")
    if not args.original:
        raise UserError("--model needs --original ORIGINAL: the model it was unlearned from")
    original = load_recipe(args.original)
    unlearned, weights = unlearned_recipe(args.model, original)
    kind = check_same_kind(unlearned, original, args.model, args.original)
    model_path = Path(args.model).expanduser()
    extra = {"unlearned": str(model_path.resolve()) if model_path.exists() else args.model, "kind": kind,
             **{k: str(Path(v).expanduser().resolve()) for k, v in (("probe", args.probe), ("data", args.data),
                                                                    ("eval_prompts", args.eval_prompts)) if v}}
    names, target, forgotten = judged_target(args, original, kind, extra.get("eval_prompts"))
    origin = provenance(args.model)
    config = RunConfig(command="eval", model=args.original, method=args.label or origin.get("method", "external"),
                       target=names, steps=int(origin.get("steps", 0) or 0), seed=args.seed or 0,
                       evaluate={**original.evaluate, **judge_options(args)}, out=args.out, extra=extra)
    check_out_folder(args.out, args.overwrite)  # before the models load: an existing --out is refused at once
    import torch

    from erase.evaluate.generator import make_judges
    from erase.models import load_generator
    from erase.runs.lifecycle import new_run_folder

    torch.manual_seed(config.seed)
    original_bundle = load_generator(original)
    unlearned_bundle = load_unlearned(unlearned, weights, original)
    report_extra = {"provenance": origin} if origin else {}
    if kind == "class-conditional":
        make_judges(original, config)  # a damaged or mismatched probe fails here, before the run folder

        def score():
            return class_metrics_pair(original_bundle, unlearned_bundle, forgotten, config)
    else:
        from erase.evaluate.concept import ConceptEvaluation

        evaluation = ConceptEvaluation(original, forgotten, config)
        report_extra["prompts"] = forgotten.as_dict()

        def score():
            return concept_metrics_pair(original_bundle, unlearned_bundle, evaluation)
    folder = new_run_folder(config, original, target["name"], args.overwrite)
    judge(folder, config, original_bundle, unlearned_bundle, score, target, command_line, started, report_extra)
    return folder


def main(args, command_line: str) -> int:
    if args.model:
        if args.run:
            raise UserError("give --run RUN (re-score a run) or --model UNLEARNED --original ORIGINAL, not both")
        from erase.runs.console import print_run_result

        print_run_result(judge_model(args, command_line))
        return 0
    if not args.run:
        raise UserError("give --run RUN (re-score a finished run) or --model UNLEARNED --original ORIGINAL "
                        "(judge an unlearned model made elsewhere)")
    stray = [flag for flag, value in (("--original", args.original), ("--forget", args.forget),
                                      ("--prompt", args.prompt), ("--probe", args.probe), ("--data", args.data),
                                      ("--label", args.label), ("--eval-prompts", args.eval_prompts),
                                      ("--out", args.out)) if value]
    if stray:
        raise UserError(f"{stray[0]} is for judging a model with --model; a run is re-scored with its own settings")
    path, report = rescore_run(args.run, command_line, samples=args.samples, forget_samples=args.forget_samples,
                               seed=args.seed, inception_weights=args.inception_weights, fid_mode=args.fid_mode,
                               update=args.update)
    print(f"wrote {path}" + (f" and {args.run}/EVAL.json" if args.update else ""))
    print_metrics(report)
    print(f"  scoring: {report['evaluation']['seconds']:.0f} s")
    return 0
