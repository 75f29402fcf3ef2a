"""`erase class`: forget one or more classes of a class-conditional generator, end to end.

Order matters for the guarantees in docs/failure-and-resume.md: every input is validated (settings, classes,
weights, data, output folder, method) before the run folder exists, and whatever needs no model before torch and
diffusers are imported, so that a refusal is fast; EVAL.json is written last and marks a complete run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from erase.attacks import robust_steps
from erase.config import Recipe, RunConfig, load_recipe
from erase.data.class_sets import data_folder, forget_classes
from erase.data.worlds import world_names
from erase.errors import UserError
from erase.evaluate.fid_weights import find_inception_weights
from erase.models import check_weights
from erase.models.io import check_weight_files
from erase.runs.console import print_run_result
from erase.runs.folders import check_out_folder
from erase.runs.resolve import evaluate_overrides, resolve_config, resumable_run, run_options


def check_class_run(config: RunConfig, recipe: Recipe) -> list[int]:
    """What needs no model, before the heavy imports: the family, the classes to forget (returned), the
    weights files, the data folder, a --probe file and clean-fid's weights."""
    if recipe.family == "classifier":
        raise UserError(f"{recipe.name} is a classifier: use `python -m erase classify --model {config.model}`")
    forget = forget_classes(recipe, config.target)
    check_weights(recipe, config.weights, config.init)
    data_folder(recipe, config)
    probe = config.extra.get("probe")
    if probe and Path(probe).expanduser().exists():
        check_weight_files(Path(probe).expanduser())
    if recipe.world in world_names():
        find_inception_weights(config.evaluate.get("inception_weights"))
    return forget


def run_class(config: RunConfig, recipe: Recipe, command_line: str, overwrite: bool = False,
              run_folder: Path | None = None) -> Path:
    """Unlearn, save, evaluate original and unlearned, write grids, SUMMARY.md and finally EVAL.json."""
    started = time.perf_counter()
    forget = check_class_run(config, recipe)
    if run_folder is None:
        check_out_folder(config.out, overwrite)
    import torch

    from erase.auto_steps import auto_stop, own_data_size
    from erase.data.class_sets import training_data
    from erase.data.generated import generated_split
    from erase.evaluate.generator import class_grid, evaluate_generator, make_judges
    from erase.models import load_generator
    from erase.runs.lifecycle import new_run_folder, unlearn_and_evaluate
    from erase.runs.processes import from_main, is_main, shared_folder
    from erase.runs.resolve import build_method
    from erase.tasks.checks import GENERATOR_CHECKS, generator_check
    from erase.tasks.denoising import denoising_task
    from erase.train import check_settings

    method = build_method(config)
    if config.extra.get("robust"):
        from erase.attacks.robust import robust_method

        method = robust_method(method, config.extra["robust"], forget)
    torch.manual_seed(config.seed)
    bundle = load_generator(recipe, config.weights, config.init)
    sets, data_source = training_data(recipe, config, forget)
    if sets is not None and len(sets[0]) == 0:
        raise UserError(f"the training data of {recipe.name} has no images of class {config.target}")
    task = denoising_task(bundle)
    task.check_objective(method.objective)
    check_settings(bundle.denoiser, config.training)
    if sets is not None:
        method.validate(bundle.denoiser, *sets)
    judges = make_judges(recipe, config)

    if run_folder is None:
        target_name = "+".join(recipe.class_names[c] for c in forget)
        run_folder = shared_folder(lambda: new_run_folder(config, recipe, target_name, overwrite))
    main = is_main()  # under `accelerate launch` every process trains; only the main one evaluates and writes
    if main:
        print(f"run folder: {run_folder}", file=sys.stderr)
    if sets is None:  # sampled once, by the main process, and handed to the others
        sets = from_main(lambda: generated_split(bundle, forget, config.seed, recipe.extra.get("generated_data", {}),
                                                 run_folder))
        method.validate(bundle.denoiser, *sets)
    forget_set, retain_set = sets
    per_row = config.evaluate.get("grid_per_class", 8)

    def evaluate(bundle, desc, use_cache):
        metrics, images, labels = evaluate_generator(bundle, forget, config, desc, use_cache=use_cache,
                                                     judges=judges)
        return metrics, class_grid(bundle, images, labels, forget, per_row)

    target = {"kind": "class", "value": forget[0] if len(forget) == 1 else forget,
              "name": "+".join(recipe.class_names[c] for c in forget)}
    extra = {"data": {"source": data_source, "forget_images": len(forget_set), "retain_images": len(retain_set)}}
    auto = None
    if config.auto and judges.probe is None:
        print(f"erase class: --steps auto needs the probe ({judges.reason}): running the recipe's {config.steps} "
              f"steps", file=sys.stderr)
    elif config.auto:
        check = generator_check(bundle, judges.probe, forget, config.seed, config.evaluate.get("batch_size", 250))
        auto = auto_stop(config, check, "class", own_data_size(recipe, config, len(forget_set) + len(retain_set)),
                         GENERATOR_CHECKS, f"probe on {sum(check.counts.values())} samples, the recipe's sampling")
    unlearn_and_evaluate(run_folder, config, bundle, task, method, forget_set, retain_set, evaluate, target,
                         command_line, started, extra, auto=auto)
    return run_folder


def resume_class(run: str, command_line: str) -> Path:
    folder, config = resumable_run(run)
    recipe = load_recipe(config.model)
    return run_class(config, recipe, command_line, run_folder=folder)


def main(args, command_line: str) -> int:
    if args.resume:
        folder = resume_class(args.resume, command_line)
    else:
        config, recipe = resolve_config(
            "class", args.model, args.method, args.forget or [], seed=args.seed, evaluate=evaluate_overrides(args),
            extra={k: v for k, v in (("data", args.data), ("probe", args.probe),
                                     ("robust", robust_steps(args.robust))) if v is not None},
            **run_options(args))
        folder = run_class(config, recipe, command_line, overwrite=args.overwrite)
    from erase.runs.processes import is_main

    if is_main():  # under `accelerate launch`, one process reports
        print_run_result(folder)
    return 0
