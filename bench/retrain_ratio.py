"""End-to-end `erase class` wall time against retraining the model from scratch without the class.

`erase class` runs as a user runs it: a fresh process, a cold evaluation cache, unlearning + sampling +
evaluation + report. Retraining is measured by timing the `retrain` method's steps (same architecture,
pretrain recipe, retain data only) and multiplying by the recipe's step count: every retrain step costs the
same, so this is the full retraining time without spending it. `--full-retrain` also runs it for real.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.step_cost import StepTimer
from bench.targets import FORGET_CLASS, load_target
from erase.runs.resolve import resolve_config
from erase.train import unlearn


def erase_class_seconds(model_name: str, method: str = "salun") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ERASE_CACHE": str(Path(tmp) / "cache"), "TQDM_DISABLE": "1"}
        command = [sys.executable, "-m", "erase", "class", "--model", model_name, "--forget", FORGET_CLASS,
                   "--method", method, "--out", str(Path(tmp) / "run")]
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
        report = json.loads((Path(tmp) / "run" / "EVAL.json").read_text())
    return {"command": "python -m erase " + " ".join(command[3:-2]), "wall_seconds": round(wall, 1),
            "seconds": report["seconds"],
            "unlearning_accuracy": report["metrics"]["unlearned"]["unlearning_accuracy"],
            "retained_accuracy": report["metrics"]["unlearned"]["retained_accuracy"]}


def retrain_seconds(model_name: str, timed_steps: int = 20, warmup: int = 3, full: bool = False) -> dict:
    config, _ = resolve_config("class", model_name, "retrain", [FORGET_CLASS])  # the full run's settings
    total_steps = config.steps
    probe = load_target(model_name, "retrain", steps=warmup + timed_steps)
    timer = StepTimer()
    unlearn(probe.model, probe.task, probe.method, probe.forget_set, probe.retain_set, probe.settings,
            hooks=(timer,))
    per_step = statistics.median(timer.seconds[warmup:])
    out = {"steps": total_steps, "batch_size": config.batch_size, "seconds_per_step": round(per_step, 4),
           "estimated_seconds": round(per_step * total_steps, 1)}
    if full:
        target = load_target(model_name, "retrain")
        started = time.perf_counter()
        unlearn(target.model, target.task, target.method, target.forget_set, target.retain_set, target.settings)
        out["measured_seconds"] = round(time.perf_counter() - started, 1)
    return out


def class_vs_retrain(model_name: str, full: bool = False) -> dict:
    erase_run = erase_class_seconds(model_name)
    retrain = retrain_seconds(model_name, full=full)
    retrain_time = retrain.get("measured_seconds", retrain["estimated_seconds"])
    return {"model": model_name, "erase_class": erase_run, "retrain": retrain,
            "retrain_over_erase_class": round(retrain_time / erase_run["wall_seconds"], 1)}
