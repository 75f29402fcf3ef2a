"""Relearning: fine-tune the attacked model with its ordinary training loss, through erase's one training loop
(the `ft` method), on the retain data alone and on k images of the forgotten class, and judge the forgotten
class after each step budget. A model that only hid the class gets it back within few steps; the retrained
reference shows how fast a model that never saw it learns it from k examples."""
from __future__ import annotations

from typing import Any

from erase.settings import Float, Int, Numbers

summary = "fine-tuning on retain data and on k forget images: UA per step budget, steps until UA < 50 %"
settings = (
    Numbers("relearn_steps", (10, 25, 50), "fine-tuning step budgets at which the forgotten class is judged",
            each=Int("relearn_steps", 1, ge=1)),
    Numbers("relearn_images", (1, 5, 25), "sizes k of the forget-image sets the attacker fine-tunes on (besides "
            "the retain data alone)", each=Int("relearn_images", 1, ge=1)),
    Float("relearn_lr", 1e-3, "learning rate of the fine-tuning (Adam)", gt=0),
    Int("relearn_batch_size", 16, "fine-tuning batch size", ge=1),
    Int("relearn_samples", 24, "samples of the forgotten class judged after each budget", ge=1),
)


def data_sets(subjects, values: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, data) the attacker fine-tunes on: the retain data, then k forget images (drawn with the seed)."""
    sets = [("retain", subjects.retain_set)]
    for k in values["relearn_images"]:
        sets.append((f"k={k}", subjects.forget_images(k)))
    return sets


def run(subjects, values: dict[str, Any]) -> dict[str, Any]:
    """Per data set and budget: success of each model; per data set: the steps until UA < 50 % (success > 50 %)
    for each model (0: already before fine-tuning; None: not within the largest budget)."""
    budgets, steps_to_relearn = [], {}
    n = values["relearn_samples"]
    before = {which: subjects.cached("relearn-before", which, {"samples": n},
                                     lambda: subjects.forget_success(subjects.models[which], n, "relearn: before"))
              for which in subjects.model_names}
    for name, data in data_sets(subjects, values):
        if data is None:
            continue
        curves = {which: subjects.cached("relearn", which, {**values, "relearn_images": name},
                                         lambda: relearn_curve(subjects, which, data, values))
                  for which in subjects.model_names}
        for i, steps in enumerate(sorted(values["relearn_steps"])):
            budgets.append({"budget": f"{name}, {steps} steps", "data": name, "steps": steps,
                            **{which: curves[which][i] for which in curves}})
        steps_to_relearn[name] = {which: first_relearned(before[which], curves[which])
                                  for which in subjects.model_names}
    return {"before": before, "budgets": budgets, "steps_to_relearn": steps_to_relearn}


def first_relearned(before: dict[str, Any], curve: list[dict[str, Any]]) -> int | None:
    """The first budget at which the judge calls most samples the forgotten class (UA < 50 %)."""
    if before["success"] > 0.5:
        return 0
    return next((point["steps"] for point in curve if point["success"] > 0.5), None)


def relearn_curve(subjects, which: str, data, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Fine-tune a copy of one model on `data` up to the largest budget; the forgotten class judged at each."""
    from erase.methods import make_method
    from erase.train import StepHook, TrainSettings, unlearn

    bundle = subjects.copy_model(which)
    budgets = sorted(values["relearn_steps"])
    points: list[dict[str, Any]] = []

    class JudgeAtBudgets(StepHook):
        def after_step(self, model, step: int) -> None:
            if step + 1 in budgets:
                model.eval()
                points.append({"steps": step + 1, **subjects.forget_success(
                    bundle, values["relearn_samples"], f"relearn {which}: {step + 1} steps")})
                model.train()

    settings = TrainSettings(steps=budgets[-1], lr=values["relearn_lr"], batch_size=values["relearn_batch_size"],
                             seed=subjects.seed, progress=False)
    unlearn(bundle.denoiser, subjects.task, make_method("ft"), None, data, settings, hooks=(JudgeAtBudgets(),))
    return points
