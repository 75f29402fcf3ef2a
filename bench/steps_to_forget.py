"""Steps to forget: the first step at which unlearning accuracy >= 98 % with retained accuracy within 2 points
of the original, scored every `every` steps on a fixed sample budget (bench/targets.py CURVE_SAMPLES), within the method's
default step budget. Scoring stops at the first step that meets the goal."""
from __future__ import annotations

from erase.train import StepHook, unlearn

from bench.targets import load_target

UA_GOAL, RETAIN_SLACK = 0.98, 0.02


class Reached(Exception):
    """Raised by the scorer once the goal is met: the rest of the budget would not change the answer."""


class Scorer(StepHook):
    def __init__(self, score, every: int, original_retained: float):
        self.score, self.every, self.curve = score, every, []
        self.floor = original_retained - RETAIN_SLACK

    def after_step(self, model, step) -> None:
        if (step + 1) % self.every == 0:
            point = {"step": step + 1, **self.score()}
            self.curve.append(point)
            if point["unlearning_accuracy"] >= UA_GOAL and point["retained_accuracy"] >= self.floor:
                raise Reached


def forget_curve(model_name: str, method: str, every: int, **overrides) -> dict:
    target = load_target(model_name, method, **overrides)
    original = target.score()
    scorer = Scorer(target.score, every, original["retained_accuracy"])
    try:
        unlearn(target.model, target.task, target.method, target.forget_set, target.retain_set, target.settings,
                hooks=(scorer,))
        reached = None
    except Reached:
        reached = scorer.curve[-1]["step"]
    return {"budget": target.settings.steps, "every": every, "original": original, "curve": scorer.curve,
            "steps_to_forget": reached}


def steps_to_forget(model_name: str, methods: list[str], every: int = 10) -> dict:
    return {"model": model_name, "ua_goal": UA_GOAL, "retain_slack": RETAIN_SLACK,
            "methods": {m: forget_curve(model_name, m, every) for m in methods}}
