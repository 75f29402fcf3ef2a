"""Seconds per training step of each method relative to a plain fine-tune step, measured interleaved.

Every round runs each method once, in a shuffled order, on the same batch size; a step is timed from the
moment its batches are ready until the method's update is done (StepHook). Rounds interleave the methods so
that load from elsewhere on the machine falls on all of them alike; we report the median per method and its
ratio to `ft`. One-off set-up (saliency masks, Fisher scores) is reported separately as prepare seconds.
"""
from __future__ import annotations

import random
import statistics
import time

from erase.train import StepHook, unlearn

from bench.targets import load_target


class StepTimer(StepHook):
    def __init__(self):
        self.seconds: list[float] = []
        self._started = 0.0

    def before_step(self, model, step, forget_batch, retain_batch) -> None:
        self._started = time.perf_counter()

    def after_step(self, model, step) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def time_method(model_name: str, method: str, steps: int, warmup: int, batch_size: int,
                **target_options) -> tuple[list[float], float]:
    target = load_target(model_name, method, steps=warmup + steps, batch_size=batch_size, **target_options)
    timer = StepTimer()
    result = unlearn(target.model, target.task, target.method, target.forget_set, target.retain_set,
                     target.settings, hooks=(timer,))
    return timer.seconds[warmup:], result.prepare_seconds


def step_costs(model_name: str, methods: list[str], rounds: int = 3, steps: int = 8, warmup: int = 2,
               batch_size: int | None = None, seed: int = 0, **target_options) -> dict:
    from erase.config import load_recipe

    batch_size = batch_size or int(load_recipe(model_name).unlearn.get("batch_size", 32))
    order = ["ft"] + [m for m in methods if m != "ft"]
    step_seconds: dict[str, list[float]] = {m: [] for m in order}
    prepare: dict[str, list[float]] = {m: [] for m in order}
    shuffle = random.Random(seed)
    for _ in range(rounds):
        shuffle.shuffle(order)
        for method in order:
            seconds, prepared = time_method(model_name, method, steps, warmup, batch_size, **target_options)
            step_seconds[method] += seconds
            prepare[method].append(prepared)
    base = statistics.median(step_seconds["ft"])
    rows = {}
    for method in sorted(step_seconds, key=lambda m: (m != "ft", m)):
        median = statistics.median(step_seconds[method])
        rows[method] = {"seconds_per_step": round(median, 5), "ratio_to_ft": round(median / base, 2),
                        "prepare_seconds": round(statistics.median(prepare[method]), 3),
                        "prepare_in_ft_steps": round(statistics.median(prepare[method]) / base, 1),
                        "timed_steps": len(step_seconds[method])}
    return {"model": model_name, "batch_size": batch_size, "rounds": rounds, "steps_per_round": steps,
            "warmup_steps": warmup, "methods": rows}
