"""A run's settings, resolved once and checked before anything is written or loaded: method class defaults <
recipe `unlearn` < recipe `methods.<name>` < command line. Every value is read through its declaration
(erase/settings.py; a method's own in erase/methods/<method>.py), so a bad one is refused in one line that
names the setting, the value, what is allowed and where it came from (`--set`, a flag, or the recipe file).

Light at import (no torch): commands resolve and check everything here before they import the heavy stack.
Commands that take a resolved RunConfig from elsewhere (config.yaml of a run to resume) call
`check_run_settings(config, source)`; other commands check their own declarations with
`erase.settings.check_values(DECLARED, values, source)`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from erase.auto_steps import AUTO
from erase.auto_steps import SETTINGS as AUTO_SETTINGS
from erase.auto_steps import users_data
from erase.config import Recipe, RunConfig, check_positive, load_recipe
from erase.errors import UserError
from erase.evaluate.fid_weights import inception_setting
from erase.methods import make_method, method_class
from erase.methods.selection import selection_class
from erase.settings import CORE, EVALUATION, TRAINING, Setting, check_known, check_values
from erase.tasks.base import OBJECTIVES

# what a recipe section may set for the trainer (erase/train.py TrainSettings); everything else in `unlearn`
# and `methods.<name>` is a method setting
TRAIN_FIELDS = set(TRAINING) | {"steps", "lr", "batch_size", "seed"}
CORE_TRAIN = ("steps", "lr", "batch_size", "seed")
AXES = ("objective", "params")


def recipe_where(recipe: Recipe) -> str:
    return f"recipe {recipe.source}" if recipe.source else f"recipe {recipe.name}"


def method_layers(recipe: Recipe, method: str) -> list[tuple[str, dict[str, Any]]]:
    """The recipe's defaults for `method`, lowest first, each with where it is written: `unlearn`, then
    `methods.<name>`; methods that train from scratch (settings_section "pretrain") take the training
    settings of the recipe's `pretrain` section instead of `unlearn`; a method's own `run_defaults` (uce: no
    steps) sit between the two."""
    where = recipe_where(recipe)
    cls = method_class(method)
    if cls.settings_section == "pretrain":
        base = ("pretrain", {k: v for k, v in recipe.pretrain.items() if k in TRAIN_FIELDS or k == "checkpoint_every"})
    else:
        base = ("unlearn", dict(recipe.unlearn))
    own = [(f"method {method}", dict(cls.run_defaults))] if cls.run_defaults else []
    return [(f"{where}, {base[0]}", base[1]), *own,
            (f"{where}, methods.{method}", dict(recipe.methods.get(method) or {}))]


def method_section(recipe: Recipe, method: str) -> dict[str, Any]:
    """The recipe's defaults for `method`, merged (see method_layers)."""
    merged: dict[str, Any] = {}
    for _, layer in method_layers(recipe, method):
        merged.update(layer)
    return merged


def core_settings(needs_steps: bool) -> dict[str, Setting]:
    """steps, lr, batch_size, seed, checkpoint_every; methods whose set-up does the unlearning accept 0 steps."""
    return CORE if needs_steps else {**CORE, "steps": dataclasses.replace(CORE["steps"], ge=0)}


def check_steps(value: Any, allow_zero: bool) -> int:
    if allow_zero and str(value).strip() in ("0", "0.0"):
        return 0
    return check_positive("--steps", value)


def check_axes(cls, objective: str | None, params: str | None):
    """The objective and parameter selection a run will use; unknown names are refused here. Returns the
    selection class (its settings are part of the run's)."""
    if objective is not None and objective not in OBJECTIVES:
        raise UserError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    return selection_class(params or cls.params)


def split_layer(layer: dict[str, Any]) -> tuple[dict, dict, dict, dict]:
    """A recipe layer as (core values, training settings, `--steps auto` settings, method settings);
    objective/params are left out."""
    core = {k: v for k, v in layer.items() if k in CORE}
    training = {k: v for k, v in layer.items() if k in TRAINING}
    auto = {k: v for k, v in layer.items() if k in AUTO_SETTINGS}
    hyper = {k: v for k, v in layer.items()
             if k not in CORE and k not in TRAINING and k not in AUTO_SETTINGS and k not in AXES}
    return core, training, auto, hyper


def is_auto(steps: Any) -> bool:
    return isinstance(steps, str) and steps.strip().lower() == AUTO


def untuned(recipe: Recipe, extra: dict | None, auto: dict[str, Any]) -> bool:
    """Whether `--steps auto` is the run's default: the recipe states its budget in epochs (`auto`: the
    method's resolved auto settings) and the run unlearns on a user's data (erase.auto_steps.users_data), so
    no step count was tuned for that data. The embedded worlds and the recipes that state steps (the
    references' tuned budgets, ddpm-cifar10's 1,000) stay fixed unless asked."""
    return bool(auto.get("epochs")) and users_data(recipe, extra)


def auto_flags(steps: Any, target_ua: Any, max_retain_drop: Any, epochs: Any = None) -> dict[str, Any]:
    """--target-ua, --max-retain-drop and --epochs, read by their declarations; refused beside a fixed
    --steps N. --epochs states the budget in passes over whatever data the run trains on."""
    given = {k: v for k, v in (("target_ua", target_ua), ("max_retain_drop", max_retain_drop),
                               ("epochs", epochs)) if v is not None}
    if given and steps is not None and not is_auto(steps):
        raise UserError(f"--{next(iter(given)).replace('_', '-')} is a setting of --steps auto; --steps "
                        f"{steps} runs a fixed number of steps: drop one of them")
    out = {}
    for name, value in given.items():
        out.update(check_values({name: AUTO_SETTINGS[name]}, {name: value}, f"--{name.replace('_', '-')}"))
    if "epochs" in given:
        out["epochs_everywhere"] = True
    return out


def resolve_config(command: str, model: str, method: str, target: list[str], *, objective=None, params=None,
                   steps=None, lr=None, batch_size=None, seed=0, hyper: dict | None = None,
                   evaluate: dict | None = None, weights=None, init="pretrained", out=None,
                   checkpoint_every=None, keep_checkpoints=False, mixed_precision="no",
                   gradient_checkpointing=False, extra: dict | None = None,
                   recipe: Recipe | None = None, target_ua=None, max_retain_drop=None,
                   epochs=None) -> tuple[RunConfig, Recipe]:
    """Defaults from the method class < recipe `unlearn` < recipe `methods.<name>` < command line.

    `methods.<name>` may set `objective` and `params` too (the method's axes for this model family).
    `hyper`: the `--set` values (text, read by the declarations) or Python values.
    `steps="auto"`: the recipe's steps become a budget (erase/auto_steps.py; methods that train from scratch,
    retrain, keep them fixed); `target_ua`, `max_retain_drop` and `epochs` go with it. None: auto on a model of
    a user's data (`untuned`), else the recipe's steps, fixed.
    `recipe`: an already adapted recipe of `model` (e.g. `concept --tiny`); default: load it by name."""
    recipe = recipe or load_recipe(model)
    cls = method_class(method)  # an unknown method name fails here, before anything else is read
    layers = method_layers(recipe, method)
    section = method_section(recipe, method)
    # A recipe may also pick a method's objective and parameter selection for its family (SFR-on's reference
    # uses adaptive GA for CIFAR DDPMs, plain GA for DiT, a redirect loss for Stable Diffusion).
    objective, params = objective or section.get("objective"), params or section.get("params")
    selection_cls = check_axes(cls, objective, params)
    declared = cls.declared_settings(selection_cls)
    owner = f"method {method} with params {params or cls.params}"
    core_declared = core_settings(cls.needs_steps)
    core: dict[str, Any] = {"steps": 100, "lr": 1e-4, "batch_size": 32, "checkpoint_every": 0}
    training: dict[str, Any] = {}
    auto: dict[str, Any] = {name: s.default for name, s in AUTO_SETTINGS.items()}
    method_values: dict[str, Any] = {}
    for where, layer in layers:
        layer_core, layer_training, layer_auto, layer_hyper = split_layer(layer)
        core.update(check_values(core_declared, layer_core, where))
        training.update(check_values(TRAINING, layer_training, where))
        auto.update(check_values(AUTO_SETTINGS, layer_auto, where))
        method_values.update(check_values(declared, layer_hyper, where, owner))
    method_values.update(check_values(declared, dict(hyper or {}), "--set", owner))
    auto.update(auto_flags(steps, target_ua, max_retain_drop, epochs))
    if steps is None and untuned(recipe, extra, auto):
        steps, auto["by_default"] = AUTO, True
    automatic = is_auto(steps) and cls.settings_section != "pretrain"  # retraining from scratch: fixed
    if is_auto(steps):
        steps = None
    if gradient_checkpointing:
        training["gradient_checkpointing"] = True
    config = RunConfig(
        command=command, model=model, method=method, target=[str(t) for t in target],
        objective=objective, params=params,
        steps=check_steps(steps, not cls.needs_steps) if steps is not None else core["steps"],
        lr=check_positive("--lr", lr, float) if lr is not None else core["lr"],
        batch_size=check_positive("--batch-size", batch_size) if batch_size is not None else core["batch_size"],
        seed=int(seed), training=training, hyper=method_values,
        evaluate={**check_known(EVALUATION, recipe.evaluate, f"{recipe_where(recipe)}, evaluate"),
                  **check_known(EVALUATION, evaluate or {}, "command line")},
        weights=weights, init=init, out=out,
        checkpoint_every=check_values(core_declared, {"checkpoint_every": checkpoint_every},
                                      "--checkpoint-every")["checkpoint_every"] if checkpoint_every is not None
        else core["checkpoint_every"],
        keep_checkpoints=keep_checkpoints, mixed_precision=mixed_precision, extra=dict(extra or {}),
        auto=auto if automatic else None,
    )
    build_method(config)  # every check the method itself makes, now, before any work
    return config, recipe


def check_run_settings(config: RunConfig, source: str) -> RunConfig:
    """Check every setting of an already resolved run (e.g. the config.yaml of a run to resume, `source`)
    as resolve_config does: method and selection settings, training, evaluation and the core values.
    Returns the config with the values typed; raises the one-line UserError naming `source`."""
    cls = method_class(config.method)
    selection_cls = check_axes(cls, config.objective, config.params)
    declared = cls.declared_settings(selection_cls)
    core = check_values(core_settings(cls.needs_steps), {"steps": config.steps, "lr": config.lr,
                                                         "batch_size": config.batch_size, "seed": config.seed,
                                                         "checkpoint_every": config.checkpoint_every}, source)
    checked = dataclasses.replace(
        config, **core, training=check_values(TRAINING, config.training, source),
        hyper=check_values(declared, config.hyper, source, f"method {config.method} with params "
                           f"{config.params or cls.params}"),
        evaluate=check_known(EVALUATION, config.evaluate, source),
        auto=None if config.auto is None else {**{n: s.default for n, s in AUTO_SETTINGS.items()},
                                              **check_values(AUTO_SETTINGS, config.auto, source)})
    build_method(checked)
    return checked


def resumable_run(run: str):
    """(folder, config) of an interrupted run to resume, its config.yaml checked as a fresh run's settings are."""
    from erase.runs.folders import incomplete_run

    folder, config = incomplete_run(run)
    return folder, check_run_settings(config, str(folder / "config.yaml"))


def build_method(config: RunConfig):
    return make_method(config.method, config.objective, config.params, **config.hyper)


def train_settings(config: RunConfig, auto=None):
    """The trainer's settings (erase.train.TrainSettings) of a resolved run; with `auto`
    (erase.auto_steps.AutoStop) the steps are its budget."""
    from erase.train import TrainSettings

    return TrainSettings(steps=config.steps if auto is None else auto.total, lr=config.lr,
                         batch_size=config.batch_size, seed=config.seed,
                         checkpoint_every=config.checkpoint_every, mixed_precision=config.mixed_precision,
                         **config.training)


def run_options(args) -> dict[str, Any]:
    """The parsed options every unlearning command (class, classify, concept) passes on to resolve_config."""
    # --steps auto when asked, or a target or budget for it is (--target-ua, --max-retain-drop, --epochs);
    # no --steps at all: resolve_config decides (auto for a model of a user's data)
    wants_auto = any(v is not None for v in (args.target_ua, args.max_retain_drop, args.epochs))
    steps = AUTO if args.steps is None and wants_auto else args.steps
    return dict(objective=args.objective, params=args.params, steps=steps,
                target_ua=args.target_ua, max_retain_drop=args.max_retain_drop, epochs=args.epochs, lr=args.lr,
                batch_size=args.batch_size, hyper=dict(args.settings), weights=args.weights, init=args.init,
                out=args.out, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing)


def evaluate_overrides(args) -> dict[str, Any]:
    """The evaluation options of a generator command (--samples, --forget-samples, FID settings)."""
    out = {}
    if args.samples is not None:
        out["samples_per_class"] = check_positive("--samples", args.samples)
    if args.forget_samples is not None:
        out["forget_samples"] = check_positive("--forget-samples", args.forget_samples)
    if args.inception_weights:
        out["inception_weights"] = inception_setting(args.inception_weights)
    if args.fid_mode:
        out["fid_mode"] = args.fid_mode
    return out
