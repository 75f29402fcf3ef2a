"""Run the chosen attacks on a finished run's three models and write attacks.json, EVAL.json's `robustness`
block, SUMMARY.md's section and plots/robustness.png (EVAL.json last, so the run stays complete throughout)."""
from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from erase.attacks import attack_module
from erase.attacks.report import robustness_block, robustness_plot, with_gaps, worst_gap
from erase.files import write_json_atomic
from erase.runs.folders import COMPLETE_MARKER

ATTACKS_FILE = "attacks.json"


def attack_run(subjects, report: dict[str, Any], settings: dict[str, dict[str, Any]], command_line: str
               ) -> dict[str, Any]:
    """Every chosen attack (`settings`: name -> its budgets, in run order) on the original, unlearned and
    reference model; writes the results and returns EVAL.json's `robustness` block."""
    started = time.perf_counter()
    attacks, seconds = {}, {}
    for name, values in settings.items():
        print(f"attack {name}: {', '.join(f'{k}={v}' for k, v in values.items())}", file=sys.stderr)
        attack_started = time.perf_counter()
        attacks[name] = {"settings": values, **with_gaps(attack_module(name).run(subjects, values))}
        seconds[name] = round(time.perf_counter() - attack_started, 2)
    seconds["total"] = round(time.perf_counter() - started, 2)
    full = {"command": command_line, "run": str(subjects.folder), "model": report.get("model"),
            "method": report.get("method"), "target": report.get("target"), "seed": subjects.seed,
            "reference": subjects.reference_record, "attacks": attacks, "worst_gap": worst_gap(attacks),
            "seconds": seconds, "at": datetime.now().isoformat(timespec="seconds")}
    return write_results(subjects.folder, report, full)


def write_results(folder: Path, report: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """attacks.json, the plot, SUMMARY.md with its robustness section, then EVAL.json with `robustness`."""
    from erase.evaluate.report import write_summary

    write_json_atomic(folder / ATTACKS_FILE, full)
    block = robustness_block(full)
    robustness_plot(block, folder / "plots" / "robustness.png")
    updated = {**report, "robustness": block}
    write_summary(folder, updated)
    write_json_atomic(folder / COMPLETE_MARKER, updated)
    return block
