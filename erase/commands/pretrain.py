"""`erase pretrain <model>`: rebuild an embedded model (and its probe) from scratch with a fixed seed, or a
classifier on a dataset folder. The training itself lives in erase/pretraining/, imported once every argument
and the recipe's `pretrain` settings are checked."""
from __future__ import annotations

import json

from erase.config import PIPELINES_DIR, Recipe, load_recipe
from erase.errors import UserError
from erase.settings import CORE, TRAINING, Float, check_known, check_values

PRETRAINED_FAMILIES = ("ddpm", "ddpm-seed", "dit", "classifier", "sd")
RECORD_NAME = "PRETRAIN.json"  # erase.pretraining.common.RECORD_NAME, without its imports
LOG_RANDOM = Float("log_random", None, "fraction of the training set whose batches are logged", gt=0, lt=1)
LOG_KEEP = Float("log_keep", 1.0, "fraction of each logged update kept per layer", gt=0, le=1)


def check_pretrain_settings(recipe: Recipe, steps: int | None) -> None:
    """The recipe's `pretrain` section (and its `probe` sub-section) and --steps, by their declarations."""
    where = f"recipe {recipe.source or recipe.name}"
    section = {k: v for k, v in recipe.pretrain.items() if k != "probe"}
    check_known({**TRAINING, **CORE}, section, f"{where}, pretrain")
    if isinstance(recipe.pretrain.get("probe"), dict):
        check_known({**TRAINING, **CORE}, recipe.pretrain["probe"], f"{where}, pretrain.probe")
    if steps is not None:
        check_values(CORE, {"steps": steps}, "--steps")


def _pretrainer(family: str):
    if family == "classifier":
        from erase.pretraining.classifiers import pretrain_classifier

        return pretrain_classifier
    if family == "sd":
        from erase.pretraining.text_to_image import pretrain_text_to_image

        return pretrain_text_to_image
    from erase.pretraining.generators import pretrain_class_generator

    return pretrain_class_generator


def pretrain(name: str, seed: int | None = None, steps: int | None = None, data: str | None = None,
             log=None, out: str | None = None, command: str = "") -> dict:
    recipe = load_recipe(name)
    if recipe.family not in PRETRAINED_FAMILIES:
        raise UserError(f"pretrain does not know family {recipe.family!r} yet")
    if not recipe.pretrain.get("steps") and steps is None:
        raise UserError(f"{name} has no pretrain recipe (pretrain.steps): it is trained elsewhere; pass its weights "
                        f"with --weights, or add a pretrain section to a copy of its recipe")
    check_pretrain_settings(recipe, steps)
    seed = recipe.pretrain.get("seed", 0) if seed is None else seed
    if recipe.family == "classifier":
        return _pretrainer("classifier")(recipe, seed, steps, data, log, out, command)
    if log is not None:
        raise UserError(f"--log-updates is implemented for classifiers: {name}'s pretraining keeps an EMA of the "
                        f"weights, and the logged raw updates do not add up to the EMA weights")
    if data is not None or out is not None:
        raise UserError(f"--data and --out apply to classifiers; {name} trains on its embedded world")
    if recipe.weights_dir is None or PIPELINES_DIR not in recipe.weights_dir.parents:
        raise UserError(f"{name} is not an embedded model: pretrain rebuilds only the models shipped in pipelines/")
    return _pretrainer(recipe.family)(recipe, seed, steps)


def check_rescore(name: str) -> None:
    recipe = load_recipe(name)
    if recipe.family == "classifier" or recipe.weights_dir is None or not (recipe.weights_dir / RECORD_NAME).is_file():
        raise UserError(f"--rescore needs an embedded generator with a {RECORD_NAME} record; {name} has none")


def main(args, command_line: str) -> int:
    if args.rescore:
        check_rescore(args.name)
        from erase.pretraining.generators import rescore

        print(json.dumps(rescore(args.name)["generated_probe_accuracy"], indent=2))
        return 0
    log = None
    if args.log_updates:
        if args.log_random is not None:
            check_values({"log_random": LOG_RANDOM}, {"log_random": args.log_random}, "--log-random")
        for keep in args.log_keep or []:
            check_values({"log_keep": LOG_KEEP}, {"log_keep": keep}, "--log-keep")
        from erase.pretraining.classifiers import LogRequest

        log = LogRequest(classes=args.log_classes, random=args.log_random, indices=args.log_indices,
                         seed=args.log_seed, keeps=args.log_keep or [1.0])
    elif args.log_classes or args.log_random is not None or args.log_indices or args.log_keep:
        raise UserError("--log-classes/--log-random/--log-indices/--log-keep need --log-updates")
    record = pretrain(args.name, seed=args.seed, steps=args.steps, data=args.data, log=log, out=args.out,
                      command=command_line)
    print(json.dumps(record, indent=2))
    return 0
