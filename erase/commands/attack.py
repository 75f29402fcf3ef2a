"""`erase attack`: does it stay forgotten? The guidance sweep, relearning and the embedding attack on a finished
run's original model, its unlearned model and the retrained reference (erase/attacks).

Every input is checked before torch loads or anything is written: the attack names, the run folder, the model's
recipe and weights, and each budget (`--set KEY=VALUE`, declared in erase/attacks/<attack>.py).
"""
from __future__ import annotations

from erase.attacks import attack_names, attack_settings, attacked_run
from erase.config import load_recipe
from erase.data.class_sets import forget_classes
from erase.errors import UserError
from erase.models import check_weights


def main(args, command_line: str) -> int:
    names = attack_names(args.attacks)
    folder, config, report = attacked_run(args.run)
    recipe = load_recipe(config.model)
    settings = attack_settings(names, recipe.family, dict(args.settings))
    check_weights(recipe, config.weights, config.init)
    if config.command != "class":
        raise UserError(f"{folder} is an `erase {config.command}` run; `erase attack` attacks `erase class` runs")
    forget = forget_classes(recipe, config.target)

    from erase.attacks.report import summary_lines
    from erase.attacks.run import attack_run
    from erase.attacks.subjects import load_class_subjects

    subjects = load_class_subjects(folder, config, recipe, forget)
    subjects.check_attacks(names)
    robustness = attack_run(subjects, report, settings, command_line)
    print("\n".join(line for line in summary_lines(robustness) if not line.startswith("![")))
    print(f"wrote {folder}/attacks.json, the robustness block of {folder}/EVAL.json, SUMMARY.md and "
          f"plots/robustness.png")
    return 0

