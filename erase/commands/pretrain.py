"""`erase pretrain <model>`: rebuild an embedded model (and its probe) from scratch with a fixed seed, or a
classifier on a dataset folder. The training itself lives in erase/pretraining/."""
from __future__ import annotations

import json

from erase.config import PIPELINES_DIR, load_recipe
from erase.errors import UserError
from erase.pretraining.classifiers import LogRequest, pretrain_classifier
from erase.pretraining.generators import pretrain_class_generator, rescore


def _pretrain_text_to_image(recipe, seed: int, steps: int | None) -> dict:
    from erase.pretraining.text_to_image import pretrain_text_to_image

    return pretrain_text_to_image(recipe, seed, steps)


PRETRAINERS = {"ddpm": pretrain_class_generator, "dit": pretrain_class_generator, "classifier": pretrain_classifier,
               "sd": _pretrain_text_to_image, "ddpm-seed": pretrain_class_generator}


def pretrain(name: str, seed: int | None = None, steps: int | None = None, data: str | None = None,
             log: LogRequest | None = None, out: str | None = None, command: str = "") -> dict:
    recipe = load_recipe(name)
    if recipe.family not in PRETRAINERS:
        raise UserError(f"pretrain does not know family {recipe.family!r} yet")
    if not recipe.pretrain.get("steps") and steps is None:
        raise UserError(f"{name} has no pretrain recipe (pretrain.steps): it is trained elsewhere; pass its weights "
                        f"with --weights, or add a pretrain section to a copy of its recipe")
    seed = recipe.pretrain.get("seed", 0) if seed is None else seed
    if recipe.family == "classifier":
        return pretrain_classifier(recipe, seed, steps, data, log, out, command)
    if log is not None:
        raise UserError(f"--log-updates is implemented for classifiers: {name}'s pretraining keeps an EMA of the "
                        f"weights, and the logged raw updates do not add up to the EMA weights")
    if data is not None or out is not None:
        raise UserError(f"--data and --out apply to classifiers; {name} trains on its embedded world")
    if recipe.weights_dir is None or PIPELINES_DIR not in recipe.weights_dir.parents:
        raise UserError(f"{name} is not an embedded model: pretrain rebuilds only the models shipped in pipelines/")
    return PRETRAINERS[recipe.family](recipe, seed, steps)


def main(args, command_line: str) -> int:
    if args.rescore:
        print(json.dumps(rescore(args.name)["generated_probe_accuracy"], indent=2))
        return 0
    log = None
    if args.log_updates:
        log = LogRequest(classes=args.log_classes, random=args.log_random, indices=args.log_indices,
                         seed=args.log_seed, keeps=args.log_keep or [1.0])
    elif args.log_classes or args.log_random is not None or args.log_indices or args.log_keep:
        raise UserError("--log-classes/--log-random/--log-indices/--log-keep need --log-updates")
    record = pretrain(args.name, seed=args.seed, steps=args.steps, data=args.data, log=log, out=args.out,
                      command=command_line)
    print(json.dumps(record, indent=2))
    return 0
