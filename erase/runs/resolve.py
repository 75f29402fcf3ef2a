"""A run's settings, resolved once: method class defaults < recipe `unlearn` < recipe `methods.<name>` <
command line, checked before anything is written."""
from __future__ import annotations

import dataclasses
from typing import Any

from erase.config import Recipe, RunConfig, check_positive, load_recipe
from erase.methods import make_method, method_class
from erase.train import TrainSettings

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


def run_options(args) -> dict[str, Any]:
    """The parsed options every unlearning command (class, classify, concept) passes on to resolve_config."""
    return dict(objective=args.objective, params=args.params, steps=args.steps, lr=args.lr,
                batch_size=args.batch_size, hyper=dict(args.settings), weights=args.weights, init=args.init,
                out=args.out, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing)


def evaluate_overrides(args) -> dict[str, Any]:
    """The evaluation options of a generator command (--samples, --forget-samples, FID settings)."""
    out = {}
    if args.samples is not None:
        out["samples_per_class"] = args.samples
    if args.forget_samples is not None:
        out["forget_samples"] = args.forget_samples
    if args.inception_weights:
        from erase.evaluate.fid import inception_setting

        out["inception_weights"] = inception_setting(args.inception_weights)
    if args.fid_mode:
        out["fid_mode"] = args.fid_mode
    return out
