"""`erase pretrain`: train a model from scratch.

- `pretrain <embedded model>`: rebuild it (and its probe) with a fixed seed; a classifier recipe also trains
  on `--data DIR`.
- `pretrain ddpm --data DIR --out OUT`: a class-conditional DDPM of the user's ImageFolder or CIFAR-10 batches,
  as a resumable long job; OUT becomes a model folder that remembers the data and the probe.
- `pretrain probe --data DIR --out OUT`: the classifier that judges samples of that data.
- `pretrain ddpm-cifar10 --data DIR`: the same long job with the recipe's settings (SalUn's; a GPU job).

The training itself lives in erase/pretraining/; every input is checked before an output folder exists.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from erase.config import PIPELINES_DIR, Recipe, check_positive, load_recipe
from erase.errors import UserError
from erase.settings import CORE, TRAINING, Choice, Float, Int, by_name, check_known, check_values

FROM_DATA = ("ddpm", "probe")
PRETRAINED_FAMILIES = ("ddpm", "ddpm-seed", "dit", "classifier", "sd")
RECORD_NAME = "PRETRAIN.json"  # erase.pretraining.common.RECORD_NAME, without its imports
LOG_RANDOM = Float("log_random", None, "fraction of the training set whose batches are logged", gt=0, lt=1)
LOG_KEEP = Float("log_keep", 1.0, "fraction of each logged update kept per layer", gt=0, le=1)
# what a generator's `pretrain` section adds to the trainer's settings (erase/pretraining/generator_job.py)
GENERATOR_PRETRAIN = by_name((
    Choice("augment", "none", "augmentation of every training image", choices=("none", "flip")),
    Int("grid_every", 0, "write a sample grid every N steps (0: only at the end)", ge=0),
))
GENERATOR_FAMILIES = ("ddpm", "dit", "ddpm-seed")
# options that only a generator or probe of the user's data takes
OWN_DATA_OPTIONS = ("resolution", "channels", "batch_size", "lr", "ema_decay", "flip", "width", "channel_mult",
                    "layers_per_block", "attention", "probe", "arch", "grid_every", "checkpoint_every",
                    "keep_checkpoints", "overwrite", "score_samples")
ARCHITECTURE_OPTIONS = ("width", "channel_mult", "layers_per_block", "attention")


def given(args, names) -> list[str]:
    """The options among `names` that the command line set (flags: True; others: not None)."""
    return [name for name in names if getattr(args, name, None) not in (None, False)]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def int_list(text: str | None, option: str, allow_none: bool = False) -> list[int] | None:
    """'1,2,2' -> [1, 2, 2]; 'none' -> [] where allowed."""
    if text is None:
        return None
    if allow_none and text.strip().lower() == "none":
        return []
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"{option} takes whole numbers separated by commas, e.g. 1,2,2; got {text!r}") from None
    if any(v <= 0 for v in values):
        raise UserError(f"{option} takes positive numbers, got {text!r}")
    return values


def training_options(args):
    from erase.pretraining.from_data import TrainingOptions

    for name in ("steps", "batch_size", "grid_every", "checkpoint_every", "score_samples"):
        value = getattr(args, name, None)
        if value is not None and (name not in ("grid_every", "checkpoint_every") or value != 0):
            check_positive(flag(name), value)
    if args.lr is not None:
        check_positive("--lr", args.lr, float)
    if args.ema_decay is not None and not 0 <= args.ema_decay < 1:
        raise UserError(f"--ema-decay must be in [0, 1), got {args.ema_decay}")
    return TrainingOptions(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay,
                           flip=args.flip, checkpoint_every=args.checkpoint_every, grid_every=args.grid_every)


def data_shape(args):
    """The data's summary and the resolution and channels the model will have."""
    from erase.data.images import default_resolution, summarize_data

    if not args.data:
        raise UserError(f"pretrain {args.name} needs --data DIR: CIFAR-10 python batches or an ImageFolder "
                        f"(DIR/<class>/<images>)")
    summary = summarize_data(Path(args.data))
    resolution = args.resolution if args.resolution is not None else default_resolution(summary.median_side)
    check_positive("--resolution", resolution)
    if summary.layout == "cifar10" and (resolution, args.channels or 3) != (32, 3):
        raise UserError(f"{summary.root} holds CIFAR-10 (32x32 RGB): leave out --resolution and --channels")
    return summary, resolution, args.channels or summary.channels


def required_out(args) -> Path:
    if not args.out:
        raise UserError(f"pretrain {args.name} needs --out DIR: the model folder to write")
    return Path(args.out).expanduser()


def linked_probe(args) -> str | None:
    if args.probe is None:
        return None
    folder = Path(args.probe).expanduser()
    if not folder.is_dir():
        raise UserError(f"probe folder {folder} does not exist: train it with `python -m erase pretrain probe "
                        f"--data DIR --out {folder}` first")
    return str(folder.resolve())


def ddpm_from_data(args, command_line: str) -> dict | None:
    from erase.pretraining.from_data import (ArchitectureOptions, default_name, generator_pretrain,
                                             generator_recipe)
    from erase.pretraining.generator_job import pretrain_generator

    if args.arch:
        raise UserError("--arch chooses the probe's classifier: use it with `pretrain probe`")
    out = required_out(args)
    options = training_options(args)
    summary, resolution, channels = data_shape(args)
    architecture = ArchitectureOptions(width=args.width, layers_per_block=args.layers_per_block,
                                       channel_mult=int_list(args.channel_mult, "--channel-mult"),
                                       attention=int_list(args.attention, "--attention", allow_none=True))
    seed = 0 if args.seed is None else args.seed
    recipe = generator_recipe(default_name(out, "ddpm"), summary, resolution, channels, architecture,
                              generator_pretrain(resolution, summary.train_images, options, seed), linked_probe(args))
    return pretrain_generator(out, recipe, command_line, seed, args.mixed_precision, args.overwrite,
                              args.keep_checkpoints, args.score_samples)


def probe_from_data(args, command_line: str) -> dict:
    from erase.pretraining.classifiers import pretrain_classifier
    from erase.pretraining.from_data import default_name, probe_recipe

    unused = given(args, ("ema_decay", "flip", "probe", "grid_every", "checkpoint_every", "keep_checkpoints",
                          "score_samples", *ARCHITECTURE_OPTIONS))
    unused += ["mixed_precision"] if args.mixed_precision != "no" else []
    if unused:
        raise UserError(f"{flag(unused[0])} applies to generators, not to `pretrain probe`")
    out = required_out(args)
    if out.exists() and not args.overwrite:
        raise UserError(f"output folder {out} already exists: pass --overwrite to replace it or choose another --out")
    options = training_options(args)
    summary, resolution, channels = data_shape(args)
    seed = 0 if args.seed is None else args.seed
    recipe = probe_recipe(default_name(out, "probe"), summary, resolution, channels, summary.train_images, options,
                          seed, kind=args.arch)
    if out.exists():  # --overwrite: pretrain_classifier replaces only folders that pretrain wrote
        import shutil

        shutil.rmtree(out) if out.is_dir() else out.unlink()
    return pretrain_classifier(recipe, seed, None, str(summary.root), None, str(out), command_line)


def recipe_generator(args, recipe, command_line: str) -> dict | None:
    """`pretrain ddpm-cifar10 --data DIR`: the recipe's model and pretrain settings on the data, as a job."""
    from erase.pretraining.generator_job import pretrain_generator

    architecture = given(args, (*ARCHITECTURE_OPTIONS, "resolution", "channels", "arch"))
    if architecture:
        raise UserError(f"{flag(architecture[0])}: {recipe.name}'s model is its recipe's; to choose the "
                        f"architecture, use `pretrain ddpm --data DIR --out DIR`")
    if not recipe.pretrain.get("steps"):
        raise UserError(f"{recipe.name} has no pretrain section (pretrain.steps) to train it with; use `pretrain "
                        f"ddpm --data DIR --out DIR`")
    options = training_options(args)
    section = dict(recipe.pretrain)
    section.update({k: v for k, v in (("steps", options.steps), ("batch_size", options.batch_size),
                                      ("lr", options.lr), ("ema_decay", options.ema_decay),
                                      ("checkpoint_every", options.checkpoint_every),
                                      ("grid_every", options.grid_every)) if v is not None})
    if options.flip:
        section["augment"] = "flip"
    seed = args.seed if args.seed is not None else int(section.get("seed", 0))
    section["seed"] = seed
    out = Path(args.out).expanduser() if args.out else recipe.weights_dir
    if out is None or PIPELINES_DIR.resolve() in out.resolve().parents:
        raise UserError(f"pass --out DIR: {recipe.name}'s weights folder {out} holds the shipped weights")
    probe = linked_probe(args) or recipe.probe
    recipe = dataclasses.replace(recipe, data=str(Path(args.data).expanduser().resolve()), probe=probe,
                                 weights=".", pretrain=section)
    return pretrain_generator(out, recipe, command_line, seed, args.mixed_precision, args.overwrite,
                              args.keep_checkpoints, args.score_samples)


def check_pretrain_settings(recipe: Recipe, steps: int | None) -> None:
    """The recipe's `pretrain` section (and its `probe` sub-section) and --steps, by their declarations."""
    where = f"recipe {recipe.source or recipe.name}"
    section = {k: v for k, v in recipe.pretrain.items() if k != "probe"}
    check_known({**TRAINING, **CORE, **GENERATOR_PRETRAIN}, section, f"{where}, pretrain")
    if isinstance(recipe.pretrain.get("probe"), dict):
        check_known({**TRAINING, **CORE}, recipe.pretrain["probe"], f"{where}, pretrain.probe")
    if steps is not None:
        check_values(CORE, {"steps": steps}, "--steps")


def _pretrainer(family: str):
    """The training function of a family, imported only once every input is checked."""
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
    """An embedded model, or a classifier recipe (optionally on --data)."""
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
    if out is not None:
        raise UserError(f"--out applies to classifiers and to generators trained on --data; {name} trains on its "
                        f"embedded world")
    if recipe.weights_dir is None or PIPELINES_DIR not in recipe.weights_dir.parents:
        raise UserError(f"{name} is not an embedded model: pretrain rebuilds only the models shipped in pipelines/; "
                        f"train it on your data with `python -m erase pretrain {name} --data DIR`")
    return _pretrainer(recipe.family)(recipe, seed, steps)


def log_request(args):
    if args.log_updates:
        if args.log_random is not None:
            check_values({"log_random": LOG_RANDOM}, {"log_random": args.log_random}, "--log-random")
        for keep in args.log_keep or []:
            check_values({"log_keep": LOG_KEEP}, {"log_keep": keep}, "--log-keep")
        from erase.pretraining.classifiers import LogRequest

        return LogRequest(classes=args.log_classes, random=args.log_random, indices=args.log_indices,
                          seed=args.log_seed, keeps=args.log_keep or [1.0])
    if args.log_classes or args.log_random is not None or args.log_indices or args.log_keep:
        raise UserError("--log-classes/--log-random/--log-indices/--log-keep need --log-updates")
    return None


def run(args, command_line: str) -> dict | None:
    """Dispatch on the name: resume, a model of the user's data, a recipe's generator on --data, or a recipe."""
    if args.resume:
        from erase.pretraining.generator_job import run_job

        if args.name:
            raise UserError("--resume continues the job in its folder: give only --resume DIR")
        return run_job(Path(args.resume))
    if not args.name:
        raise UserError("name what to pretrain: an embedded model (see `python -m erase list`), `ddpm --data DIR "
                        "--out DIR` or `probe --data DIR --out DIR`")
    if args.name == "ddpm":
        return ddpm_from_data(args, command_line)
    if args.name == "probe":
        return probe_from_data(args, command_line)
    recipe = load_recipe(args.name)
    if recipe.family in GENERATOR_FAMILIES and args.data:
        return recipe_generator(args, recipe, command_line)
    unused = given(args, OWN_DATA_OPTIONS) + (["mixed_precision"] if args.mixed_precision != "no" else [])
    if unused:
        raise UserError(f"{flag(unused[0])} applies to `pretrain ddpm`, `pretrain probe` and to generators "
                        f"trained on --data")
    if recipe.family in GENERATOR_FAMILIES and not (recipe.weights_dir and PIPELINES_DIR in
                                                    recipe.weights_dir.parents):
        raise UserError(f"{args.name} is not an embedded model: train it on your data with `python -m erase "
                        f"pretrain {args.name} --data DIR` (CIFAR-10 python batches or an ImageFolder)")
    return pretrain(args.name, seed=args.seed, steps=args.steps, data=args.data, log=log_request(args),
                    out=args.out, command=command_line)


def check_rescore(name: str) -> None:
    recipe = load_recipe(name)
    if recipe.family == "classifier" or recipe.weights_dir is None or not (recipe.weights_dir / RECORD_NAME).is_file():
        raise UserError(f"--rescore needs an embedded generator with a {RECORD_NAME} record; {name} has none")


def main(args, command_line: str) -> int:
    if args.rescore:
        if not args.name:
            raise UserError("--rescore needs the name of an embedded generator, e.g. ddpm-digits")
        check_rescore(args.name)
        from erase.pretraining.generators import rescore

        print(json.dumps(rescore(args.name)["generated_probe_accuracy"], indent=2))
        return 0
    record = run(args, command_line)
    if record is not None:  # under `accelerate launch`, the main process reports
        print(json.dumps(record, indent=2))
    return 0
