"""Attacks that try to bring a forgotten class or concept back, each scored against the retrained reference.

One module per attack (guidance.py, relearn.py, embedding.py) declares its budgets as `settings` (erase/settings.py
types) and runs with `run(subjects, values)`; modules stay light at import (torch is imported inside `run`), so a
bad attack name or budget is refused before any model loads. Every attack reports, per budget, the share of
samples the judge calls the forgotten target (`success`) for the original, the unlearned model and the
reference, and the gap: unlearned minus reference (<= 0: as deep as retraining on that attack).
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Any, Mapping

from erase.errors import UserError
from erase.settings import Setting, by_name, check_values

# the three models every attack is run on, in report order
MODELS = ("original", "unlearned", "reference")
# attack name -> module under erase.attacks, in the order they run and are reported
ATTACKS = {"guidance": "erase.attacks.guidance", "relearn": "erase.attacks.relearn",
           "embedding": "erase.attacks.embedding"}


def attack_module(name: str):
    return importlib.import_module(ATTACKS[name])


def attack_names(text: str | None) -> list[str]:
    """`--attacks guidance,relearn` -> the names in run order; all of them when not given."""
    if text is None:
        return list(ATTACKS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        what = f"unknown attack {unknown[0]!r}" if unknown else "--attacks names no attack"
        raise UserError(f"{what}: use one or more of {', '.join(ATTACKS)}, comma-separated")
    return [n for n in ATTACKS if n in names]


def declared(names: list[str]) -> dict[str, Setting]:
    """The budgets of the chosen attacks, by setting name (names are unique across attacks)."""
    return by_name(s for name in names for s in attack_module(name).settings)


def attack_settings(names: list[str], family: str, given: Mapping[str, Any], source: str = "--set"
                    ) -> dict[str, dict[str, Any]]:
    """Each chosen attack's budgets: its declared defaults (those of the model family where it has its own, as
    Stable Diffusion's guidance scales), replaced by `given` (`--set KEY=VALUE`); a bad or unknown one is a
    UserError naming it and what is allowed."""
    known = declared(names)
    values = check_values(known, dict(given), source, owner=f"attacks {', '.join(names)}")
    out = {}
    for name in names:
        module = attack_module(name)
        family_defaults = getattr(module, "FAMILY_DEFAULTS", {}).get(family, {})
        out[name] = {s.name: values.get(s.name, family_defaults.get(s.name, s.default)) for s in module.settings}
    return out


# run commands whose models can be attacked: erase's own unlearning runs, and `eval` runs of models unlearned
# elsewhere (judged against the original they name)
ATTACKABLE = ("class", "concept", "eval")
GIVE_A_RUN = "give a folder printed by `erase class`, `erase concept` or `erase eval --model`"


def attacked_run(run: str):
    """(folder, config, EVAL.json) of a finished `erase class`, `concept` or `eval --model` run with its unlearned
    model; anything else is a UserError saying what to give instead. Light: nothing is loaded."""
    from erase.runs.folders import finished_report, run_folder_config

    folder, config = run_folder_config(run, GIVE_A_RUN)
    if config.command not in ATTACKABLE:
        raise UserError(f"{folder} is an `erase {config.command}` run; `erase attack` attacks generators unlearned "
                        f"by `erase class` or `erase concept`, or judged by `erase eval --model`")
    report = finished_report(folder, config.command)
    if config.command == "eval":
        check_judged_run(folder, config)
    elif not (folder / "model").is_dir():
        raise UserError(f"{folder} has no model/ folder: the unlearned model is missing, so there is nothing to "
                        f"attack")
    return folder, config, report


def check_judged_run(folder, config) -> None:
    """An `eval --model` run's config.yaml names its original, the judged model and their kind; one that does
    not (edited or damaged) is refused."""
    missing = [what for what, value in (("the original (--original)", config.model),
                                        ("the judged model (--model)", config.extra.get("unlearned")),
                                        ("the model kind", config.extra.get("kind"))) if not value]
    if missing:
        raise UserError(f"{folder}/config.yaml does not name {missing[0]}: `erase attack` needs an eval run made "
                        f"by `erase eval --model UNLEARNED --original ORIGINAL`")


def is_concept_run(config) -> bool:
    """A text-to-image run: `erase concept`, or `erase eval --model` of a text-to-image model."""
    return config.command == "concept" or (config.command == "eval" and config.extra.get("kind") == "text-to-image")


def check_subjects(config):
    """What needs no model, before the heavy imports: the run's recipe (tiny when the run was), its weights files
    (an eval run's judged model's too) and what was forgotten: (recipe, forgotten class ids) of a class run,
    (recipe, the concept's prompts) of a concept run, which erase judges with the shapes world's probe."""
    from erase.config import load_recipe
    from erase.models import check_weights

    if config.command == "eval":  # the models it names may have moved since it was judged
        from erase.runs.unlearned import unlearned_recipe

        with said_of("the eval run's original"):
            recipe = load_recipe(config.model)
        with said_of("the eval run's judged model"):
            unlearned, weights = unlearned_recipe(config.extra["unlearned"], recipe)
            check_weights(unlearned, weights)
    else:
        recipe = load_recipe(config.model)
    if not is_concept_run(config):
        from erase.data.class_sets import forget_classes

        target = forget_classes(recipe, config.target)
    else:
        from erase.data.prompts import concept_prompts
        from erase.models.tiny_sd import apply_tiny

        recipe = apply_tiny(recipe) if config.extra.get("tiny") else recipe
        target = concept_prompts(recipe, config.target[0], config.extra.get("anchor"),
                                 config.extra.get("eval_prompts"))
        if recipe.world != "shapes":
            raise UserError(f"`erase attack` judges concepts with the shapes world's probe; {recipe.name} has "
                            f"none to judge {target.concept!r}")
    check_weights(recipe, config.weights, config.init)
    return recipe, target


@contextmanager
def said_of(what: str):
    """A UserError raised inside, prefixed with what it is about."""
    try:
        yield
    except UserError as error:
        raise UserError(f"{what}: {error}") from None


def robust_steps(value: int | None) -> int | None:
    """`--robust K` of `erase class` and `concept`: the inner attack steps, a whole number >= 1 (None: off)."""
    from erase.config import check_positive

    return None if value is None else check_positive("--robust", value)
