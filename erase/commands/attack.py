"""`erase attack`: does it stay forgotten? The guidance sweep, relearning and the embedding attack on a finished
run's original model, its unlearned model and (class runs) the retrained reference (erase/attacks). The run is
an `erase class` or `erase concept` run, or an `erase eval --model` run: a model unlearned elsewhere, attacked
against the original it was judged with.

Every input is checked before torch loads or anything is written: the attack names, the run folder, the model's
recipe and weights, what was forgotten, and each budget (`--set KEY=VALUE`, declared in erase/attacks/<attack>.py).
"""
from __future__ import annotations

from erase.attacks import attack_names, attack_settings, attacked_run, check_subjects, is_concept_run


def main(args, command_line: str) -> int:
    names = attack_names(args.attacks)
    folder, config, report = attacked_run(args.run)
    recipe, target = check_subjects(config)
    settings = attack_settings(names, recipe.family, dict(args.settings))

    from erase.attacks.report import summary_lines
    from erase.attacks.run import attack_run

    if not is_concept_run(config):
        from erase.attacks.subjects import load_class_subjects

        subjects = load_class_subjects(folder, config, recipe, target)
    else:
        from erase.attacks.concepts import load_concept_subjects

        subjects = load_concept_subjects(folder, config, recipe, target)
    subjects.check_attacks(names)
    robustness = attack_run(subjects, report, settings, command_line)
    print("\n".join(line for line in summary_lines(robustness) if not line.startswith("![")))
    print(f"wrote {folder}/attacks.json, the robustness block of {folder}/EVAL.json, SUMMARY.md and "
          f"plots/robustness.png")
    return 0
