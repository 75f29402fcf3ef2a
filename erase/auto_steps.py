"""`--steps auto`: the recipe's step count is a budget, and a cheap held-out check decides when to stop.

Every `every` steps (and at step 0, on the original model, and at the end of the budget) the task's check
(erase/tasks/checks.py) scores the model: UA on the forget target and a retained score on held-out data. The
run stops at the first check that meets the target (UA >= `target_ua` for classes and concepts; for random
samples, forget accuracy at most the held-out accuracy plus a margin, as a retrained model shows) without
losing more than `max_retain_drop` points of the retained score against the original. The model kept is the
best check: one that met the target and the guard (highest retained score, earliest on a tie); else one that
met the target only (flagged: the best compromise); else, the target never met, the guarded check that forgot
most (said so). The step-0 check is the original model and is never kept.

A check of a few dozen samples cannot see a drop of a few points in one retained class, and its score of the
original is itself noisy. A check may therefore carry a confirmation (`check.confirm`): more samples of the
retained classes, drawn only for the original and for a check that meets the target; the guard of such a
check is decided on the retained score over the check's and the confirmation's samples together, against the
original's pooled score.

The checks are part of the training state (checkpointed with it), so `--resume` ends where an unbroken run
ends. This module is light at import (no torch): commands resolve `--steps auto` before the heavy imports.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from erase.settings import Bool, Float, by_name

AUTO = "auto"
RANDOM_MARGIN = 0.02  # random-sample forgetting: forget accuracy <= held-out accuracy + 2 points is met
MIN_BUDGET = 10  # an epochs budget on tiny data still gives the checks room
SETTINGS = by_name((
    Float("target_ua", 99.0, "--steps auto: stop once UA on the check reaches this (percent)", gt=0, le=100),
    Float("max_retain_drop", 2.0, "--steps auto: never keep a check that lost more retained accuracy than "
          "this against the original (points)", ge=0, le=100),
    Float("epochs", None, "--steps auto: the budget in passes over the training data (recipes of a user's "
          "data); none: the recipe's steps", gt=0, optional=True),
    Bool("epochs_everywhere", False, "--steps auto: the epochs budget applies to the embedded worlds' data and "
         "to a concept's generated images too (set by --epochs)"),
    Bool("by_default", False, "--steps auto was not asked for: it is the default on a model of a user's data "
         "whose recipe states epochs (recorded, not set)"),
))


def users_data(recipe, extra: dict | None) -> bool:
    """Whether the run unlearns on a user's folder: `--data`, or a model trained on one (its recipe names it)."""
    return bool(recipe.data or (extra or {}).get("data"))


def own_data_size(recipe, config, size: int) -> int:
    """`size` (the training data the run unlearns on) when that data is a user's folder (users_data) or the
    budget was given in epochs on the command line (--epochs), else 0: the embedded worlds and a concept's
    generated images keep the steps their recipes were tuned with."""
    given = bool(config.auto and config.auto.get("epochs_everywhere"))
    return size if (users_data(recipe, config.extra) or given) else 0


def budget(steps: int, auto: dict[str, Any], train_size: int, batch_size: int) -> int:
    """The steps a `--steps auto` run may take: `epochs` passes over `train_size` samples when the recipe
    states its budget in epochs and the data is a user's (train_size > 0, see own_data_size), else the
    recipe's steps."""
    epochs = auto.get("epochs")
    if epochs and train_size:
        return max(MIN_BUDGET, math.ceil(epochs * train_size / batch_size))
    return steps


def check_every(total: int, checks: int) -> int:
    """Steps between checks: about `checks` of them over `total` steps."""
    return max(1, math.ceil(total / max(1, checks)))


@dataclass(frozen=True)
class Target:
    """What a check must show. kind "class" (classes and concepts): UA >= ua. kind "random": forget
    accuracy (1 - UA) <= the held-out accuracy + margin."""

    kind: str
    ua: float = 0.99
    margin: float = RANDOM_MARGIN

    def met(self, ua: float, retained: float) -> bool:
        if self.kind == "random":
            return 1 - ua <= retained + self.margin + 1e-9
        return ua >= self.ua - 1e-9

    def describe(self) -> str:
        if self.kind == "random":
            return f"forget accuracy <= held-out accuracy + {self.margin:.0%}"
        return f"UA >= {self.ua:.1%}"


class AutoStop:
    """The checks of one `--steps auto` run and the model they keep; checkpointable (accelerate
    register_for_checkpointing). `check(model) -> (ua, retained)`, both in [0, 1]; `reduce` averages a
    dict of floats over processes (each scores the same weights, so they agree)."""

    def __init__(self, check: Callable, target: Target, total: int, every: int, max_retain_drop: float,
                 reduce: Callable[[dict], dict] | None = None, label: str = "check", by_default: bool = False):
        self.check = check
        self.target = target
        self.total = total
        self.every = every
        self.max_retain_drop = max_retain_drop
        self.reduce = reduce
        self.label = label  # what the check is, for EVAL.json
        self.by_default = by_default  # auto without --steps auto (a user's data), for the report
        self.checks: list[dict[str, Any]] = []
        self.kept: dict[str, Any] | None = None  # the kept check's weights (on the CPU)
        self.kept_step: int | None = None
        self.seconds = 0.0

    # -- during training ---------------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        return step == self.total or step % self.every == 0

    def run(self, model, step: int) -> dict[str, Any]:
        """Score `model` after `step` steps; keep its weights when it is the best so far. Returns the record
        (`stop`: the target is met within the guard)."""
        started = time.perf_counter()
        training = model.training
        model.eval()
        ua, retained = (getattr(self.check, "original", self.check) if step == 0 else self.check)(model)
        scores = self.reduced({"ua": float(ua), "retained": float(retained)})
        record = {"step": step, "ua": scores["ua"], "retained": scores["retained"],
                  "met": self.target.met(scores["ua"], scores["retained"])}
        if step > 0:
            record["guard"] = self.within_guard(record)
        if self.confirm is not None and (step == 0 or record["met"]):
            self.confirmed(model, record)
        model.train(training)
        best = self.best()  # among the earlier trained checks; the step-0 check (the original) is never kept
        self.checks.append(record)
        if step > 0 and (best is None or self.rank(record) > self.rank(best)):
            self.keep(model, step)
        record["stop"] = bool(record["met"] and record.get("guard"))
        self.seconds += time.perf_counter() - started
        return record

    @property
    def confirm(self):
        return getattr(self.check, "confirm", None)

    def reduced(self, scores: dict[str, float]) -> dict[str, float]:
        return scores if self.reduce is None else self.reduce(scores)

    def confirmed(self, model, record: dict[str, Any]) -> None:
        """Score the confirmation's retained samples and pool them with the check's (`confirmed`); a trained
        check is within the guard when the pooled score is (`guard`), whatever its own few samples said."""
        confirm = self.confirm
        score = (confirm.original(model) if record["step"] == 0 else confirm(model, record["step"]))[0]
        extra = self.reduced({"retained": float(score)})["retained"]
        n, m = self.check.retained_samples, confirm.retained_samples
        record["confirmed"] = (n * record["retained"] + m * extra) / (n + m)
        if record["step"] > 0 and "confirmed" in self.checks[0]:
            pooled_guard = self.guard_for(1 / (n + m))
            record["guard"] = self.holds(record["confirmed"], self.checks[0]["confirmed"], pooled_guard)

    @property
    def guard(self) -> float:
        """The retained points a kept check may lose (guard_for the check's resolution)."""
        return self.guard_for(getattr(self.check, "resolution", 0.0))

    def guard_for(self, resolution: float) -> float:
        """max_retain_drop, but never less than one sample of what was scored (a guard finer than the score
        can see would refuse every model over one sample)."""
        return max(self.max_retain_drop, resolution)

    @staticmethod
    def holds(retained: float, baseline: float, guard: float) -> bool:
        return retained >= baseline - guard - 1e-9

    def within_guard(self, record: dict[str, Any]) -> bool:
        return self.holds(record["retained"], self.baseline, self.guard)

    @property
    def baseline(self) -> float:
        return self.checks[0]["retained"]

    def rank(self, record: dict[str, Any]) -> tuple:
        """Higher is better: met and guarded > met only > not met; then the retained score and the earlier
        step (met), or the guard, UA, retained score and the later step (not met: with nothing forgotten
        better, the model that trained on the retain data longest)."""
        if record["met"]:
            return (2 if record["guard"] else 1, record["retained"], -record["step"])
        return (0, record["guard"], record["ua"], record["retained"], record["step"])

    def best(self) -> dict[str, Any] | None:
        trained = [c for c in self.checks if c["step"] > 0]
        return max(trained, key=self.rank, default=None)

    def keep(self, model, step: int) -> None:
        self.kept = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.kept_step = step

    def restore(self, model) -> None:
        """Put the kept check's weights back into `model` (when it is not the last one)."""
        last = self.checks[-1]["step"] if self.checks else None
        if self.kept is not None and self.kept_step != last:
            model.load_state_dict(self.kept)

    # -- the report ------------------------------------------------------------------------------------------
    def report(self, stopped_at: int) -> dict[str, Any]:
        best = self.best()
        met, guarded = bool(best and best["met"]), bool(best and best["guard"])
        if best is None:
            note = "no check ran"
        elif met and guarded:
            note = f"target met at step {best['step']} ({self.target.describe()} on the check)"
        elif met:
            note = (f"every check that met the target lost more than {self.guard:.1%} retained "
                    f"accuracy: kept the best compromise, step {best['step']}")
        else:
            note = (f"target never met within the budget of {self.total} steps: kept the best check, step "
                    f"{best['step']} (UA {best['ua']:.1%})")
        return {"budget": self.total, "every": self.every, "target": self.target.describe(),
                "target_ua": self.target.ua if self.target.kind != "random" else None,
                "max_retain_drop": self.max_retain_drop, "guard": self.guard, "check": self.label,
                "stopped_at": stopped_at, "by_default": self.by_default,
                "confirmation": None if self.confirm is None else
                f"{self.confirm.retained_samples} more retained samples, pooled with the check's "
                f"{self.check.retained_samples}",
                "confirmations": sum("confirmed" in c for c in self.checks[1:]),
                "kept_step": best["step"] if best else stopped_at, "target_met": met,
                "guard_met": guarded, "compromise": met and not guarded, "note": note,
                "original": self.checks[0] if self.checks else None,
                "checks": [{k: v for k, v in c.items() if k != "stop"} for c in self.checks],
                "seconds": round(self.seconds, 2)}

    # -- checkpointing ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"checks": json.dumps(self.checks), "kept_step": -1 if self.kept_step is None else self.kept_step,
                "kept": self.kept or {}, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.checks = json.loads(state["checks"])
        self.kept_step = None if int(state["kept_step"]) < 0 else int(state["kept_step"])
        self.kept = dict(state["kept"]) or None
        self.seconds = float(state["seconds"])


def auto_stop(config, check: Callable, kind: str, train_size: int, checks: int, label: str) -> AutoStop | None:
    """The AutoStop of a resolved run (erase.config.RunConfig), or None when its steps are fixed. `kind`:
    "class" (classes, concepts) or "random"/"indices" (samples); `checks`: about how many checks the budget
    holds (the task's: cheap ones more often)."""
    if not config.auto:
        return None
    total = budget(config.steps, config.auto, train_size, config.batch_size)
    # `checks` per pass over the data, not per budget: a budget of several passes must not see its first
    # check only after the pass in which a small model already forgets (and starts to lose the rest)
    one_pass = budget(config.steps, {**config.auto, "epochs": 1}, train_size, config.batch_size) \
        if config.auto.get("epochs") else total
    target = Target("class" if kind == "class" else "random", ua=config.auto["target_ua"] / 100)
    return AutoStop(check, target, total, check_every(min(total, one_pass), checks),
                    config.auto["max_retain_drop"] / 100, label=label, by_default=bool(config.auto.get("by_default")))
