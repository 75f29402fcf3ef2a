"""`erase concept`: erase a concept (nudity, a style, a shape...) from a text-to-image model, end to end.

Forget data are images the original model generates for the concept's forget prompts, retain data images
for its retain prompts (erase/data/concept_sets.py). Evaluation depends on the model's world
(erase/evaluate/concept.py). As `erase class`, every input is checked before the run folder exists (and
whatever needs no model before the heavy imports), and EVAL.json is written last.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from erase.attacks import robust_steps
from erase.config import Recipe, RunConfig, check_positive, load_recipe
from erase.data.prompts import ConceptPrompts, check_concept, concept_prompts
from erase.errors import UserError
from erase.evaluate.clip_score import check_clip_folder
from erase.methods import method_class
from erase.models import check_weights
from erase.models.tiny_sd import apply_tiny
from erase.runs.console import print_run_result
from erase.runs.folders import check_out_folder
from erase.runs.resolve import build_method, resolve_config, resumable_run, run_options


def concept_recipe(model: str, tiny: bool, init: str) -> Recipe:
    recipe = load_recipe(model)
    if recipe.family != "sd":
        raise UserError(f"{recipe.name} is not a text-to-image model: use `python -m erase class --model {model}` "
                        f"or `erase classify`")
    if tiny:
        if init != "random":
            raise UserError("--tiny builds a tiny random Stable Diffusion stack: add --init random")
        recipe = apply_tiny(recipe)
    return recipe


def resolve_concept_config(command: str, model: str, method: str, concept: str | None, tiny: bool = False,
                           anchor: str | None = None, eval_prompts: str | None = None, clip: str | None = None,
                           robust: int | None = None, **options) -> tuple[RunConfig, Recipe]:
    concept = check_concept(concept)
    recipe = concept_recipe(model, tiny, options.get("init", "pretrained"))
    extra = {"tiny": tiny, "anchor": anchor, **({"robust": robust_steps(robust)} if robust is not None else {})}
    if eval_prompts:
        extra["eval_prompts"] = str(Path(eval_prompts).expanduser().resolve())
    if clip:
        extra["clip"] = check_clip_folder(clip)
    config, recipe = resolve_config(command, model, method, [concept], recipe=recipe, extra=extra, **options)
    # an unknown concept or anchor, or a bad prompt CSV, fails here, before any work
    concept_prompts(recipe, concept, anchor, extra.get("eval_prompts"))
    return config, recipe


def check_esd_prompts(config: RunConfig, prompts: ConceptPrompts) -> None:
    """ESD on the forget prompts steers from a prompt per forget prompt; refuse the run when there is none."""
    objective = config.objective or method_class(config.method).objective
    setting = config.hyper.get("esd_prompts", "concept") if objective == "esd" else "concept"
    if setting == "anchor" and not any(prompts.anchors):
        raise UserError(f"esd_prompts=anchor needs an anchor prompt: add anchor.txt to {prompts.source} or give "
                        f"--anchor")
    if setting == "forget" and not prompts.neutral:
        raise UserError(f"esd_prompts=forget needs each forget prompt without the concept: add neutral.txt "
                        f"to {prompts.source} (one line, or one per forget prompt), or use esd_prompts=concept")


def check_concept_run(config: RunConfig, recipe: Recipe) -> tuple[str, ConceptPrompts]:
    """What needs no model, before the heavy imports: the concept and its prompts, what the method needs from
    them, and the weights files. Returns the concept and its prompts."""
    concept = check_concept(config.target[0] if config.target else None)
    prompts = concept_prompts(recipe, concept, config.extra.get("anchor"), config.extra.get("eval_prompts"))
    method = method_class(config.method)
    if method.needs_training_data:
        raise UserError(f"method {config.method} works on the model's training data (logged updates or "
                        f"retraining); a concept's forget data are generated images: use e.g. salun, esd or ga")
    if method.uses_retain and not prompts.retain:
        raise UserError(f"method {config.method} needs retain prompts: add lines to the concept's retain.txt")
    check_esd_prompts(config, prompts)
    if config.extra.get("clip"):  # a resumed run's CLIP folder may have gone since
        check_clip_folder(config.extra["clip"])
    check_weights(recipe, config.weights, config.init)
    return concept, prompts


def run_concept(config: RunConfig, recipe: Recipe, command_line: str, overwrite: bool = False,
                run_folder: Path | None = None) -> Path:
    started = time.perf_counter()
    concept, prompts = check_concept_run(config, recipe)
    if run_folder is None:
        check_out_folder(config.out, overwrite)
    import torch

    from erase.auto_steps import auto_stop, own_data_size
    from erase.data.concept_sets import concept_data
    from erase.evaluate.concept import ConceptEvaluation
    from erase.models import load_generator
    from erase.runs.lifecycle import new_run_folder, unlearn_and_evaluate
    from erase.runs.processes import from_main, is_main, shared_folder
    from erase.tasks.checks import GENERATOR_CHECKS, concept_check
    from erase.tasks.denoising import denoising_task
    from erase.train import check_settings

    method = build_method(config)
    if config.extra.get("robust"):
        from erase.attacks.robust import robust_method

        method = robust_method(method, config.extra["robust"])
    torch.manual_seed(config.seed)
    bundle = load_generator(recipe, config.weights, config.init)
    task = denoising_task(bundle)
    task.check_objective(method.objective)
    check_settings(bundle.denoiser, config.training)
    evaluation = ConceptEvaluation(recipe, prompts, config)

    if run_folder is None:
        run_folder = shared_folder(lambda: new_run_folder(config, recipe, concept, overwrite))
    if is_main():  # under `accelerate launch` every process trains; only the main one evaluates and writes
        print(f"run folder: {run_folder}", file=sys.stderr)
    # generated once, by the main process, and handed to the others
    draws = config.steps > 0 or method.prepare_reads_images  # uce with no steps reads the prompts alone
    forget_set, retain_set = from_main(lambda: concept_data(bundle, prompts, config, run_folder,
                                                            method.forget_images, method.uses_retain, draws))
    method.validate(bundle.denoiser, forget_set, retain_set)
    target = {"kind": "concept", "value": concept, "name": concept}
    extra = {"prompts": prompts.as_dict(), "clip": evaluation.clip_report(),
             "data": {name: len(data) if data is not None and data.images is not None else 0
                      for name, data in (("forget_images", forget_set), ("retain_images", retain_set))}}
    auto, check = None, concept_check(evaluation, bundle) if config.auto else None
    if config.auto and check is None:
        print(f"erase concept: --steps auto needs a judge of {concept!r} (NudeNet, the shapes probe): running the "
              f"recipe's {config.steps} steps", file=sys.stderr)
    elif config.auto:  # a concept's data are generated: the recipe's steps are the budget, unless --epochs
        size = own_data_size(recipe, config, len(forget_set) + (len(retain_set) if retain_set else 0))
        auto = auto_stop(config, check, "class", size, GENERATOR_CHECKS,
                         f"{evaluation.kind} on {check.images} images of the forget and retain prompts")
    unlearn_and_evaluate(run_folder, config, bundle, task, method, forget_set, retain_set, evaluation, target,
                         command_line, started, extra, auto=auto)
    return run_folder


def resume_concept(run: str, command_line: str) -> Path:
    folder, config = resumable_run(run)
    recipe = concept_recipe(config.model, bool(config.extra.get("tiny")), config.init)
    return run_concept(config, recipe, command_line, run_folder=folder)


def main(args, command_line: str) -> int:
    if args.resume:
        folder = resume_concept(args.resume, command_line)
    else:
        evaluate = {}
        if args.images_per_prompt is not None:
            evaluate["images_per_prompt"] = check_positive("--images-per-prompt", args.images_per_prompt)
        config, recipe = resolve_concept_config(
            "concept", args.model, args.method, args.prompt, tiny=args.tiny, anchor=args.anchor,
            eval_prompts=args.eval_prompts, clip=args.clip, robust=args.robust, seed=args.seed, evaluate=evaluate,
            **run_options(args))
        folder = run_concept(config, recipe, command_line, overwrite=args.overwrite)
    from erase.runs.processes import is_main

    if is_main():  # under `accelerate launch`, one process reports
        print_run_result(folder)
    return 0
