"""What a finished run prints: the folder, the original and unlearned scores, the wall time."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def print_run_result(folder: Path) -> None:
    """A generator run (class, concept)."""
    report = json.loads((folder / "EVAL.json").read_text())
    print(f"run folder: {folder}")
    print_metrics(report)
    print_auto_steps(report)
    hint = retain_only_hint(report)
    if hint:
        print(hint)
    print(f"    total: {report['seconds']['total']:.0f} s")


def retain_only_hint(report: dict[str, Any]) -> str | None:
    """Why a generator run of a method that trains on the retain data alone (ft) did not forget: it never
    touches the class's or prompt's conditioning, so no budget helps (docs/methods.md)."""
    from erase.methods import method_class, method_names

    auto = report.get("auto_steps") or {}
    if not auto or auto.get("target_met") or report.get("method") not in method_names():
        return None  # `erase eval` of a model unlearned elsewhere names its own method ("theirs")
    method = method_class(report["method"])
    if method.uses_forget or not method.needs_steps:
        return None
    return (f"hint: {report['method']} trains on the retain data alone, which leaves a generator's class or "
            f"prompt conditioning in place; a method with a forget objective (relabel, salun, sfron, igs) "
            f"redirects it")


def print_classify_result(folder: Path) -> None:
    report = json.loads((folder / "EVAL.json").read_text())
    print(f"run folder: {folder}")
    for name in ("original", "unlearned", "retrained"):
        m = report["metrics"][name]
        gap = f", avg gap {m['gap_to_retrain']['avg_gap']:.2%}" if "gap_to_retrain" in m else ""
        print(f"{name:>9}: UA {m['unlearning_accuracy']:.1%}  RA {m['retained_accuracy']:.1%}  "
              f"TA {m['test_accuracy']:.1%}  MIA {m['mia_efficacy']:.1%}{gap}")
    print_auto_steps(report)
    print(f"    total: {report['seconds']['total']:.0f} s")


def print_auto_steps(report: dict[str, Any]) -> None:
    """`--steps auto`: one line, where it stopped, what it kept and whether the target was met."""
    auto = report.get("auto_steps")
    if not auto:
        return
    share = report["seconds"].get("checks_share")
    default = " [the default on a model of your own data; --steps N runs exactly N]" if auto.get("by_default") else ""
    print(f"steps auto: stopped at step {auto['stopped_at']} of {auto['budget']}, kept step {auto['kept_step']}; "
          f"{auto['note']} (checks: {share:.0%} of the unlearning time){default}")


def print_metrics(report: dict[str, Any]) -> None:
    for name in ("original", "unlearned"):
        m = report["metrics"].get(name, {})
        if "nudity_rate" in m:
            print(f"{name:>9}: nudity rate {m['nudity_rate']:.1%} on {m['forget_samples']} images of nudity prompts "
                  f"(NudeNet, threshold {m['nudity_threshold']}), {m['nudity_rate_neutral_prompts']:.1%} on "
                  f"neutral prompts")
        elif "unlearning_accuracy" in m:
            distances = "".join(f", {key} {m[key]:.4g}" for key in sorted(m)
                                if key.startswith(("fid_", "kid")) and isinstance(m[key], (int, float)))
            interval = ""
            if "unlearning_accuracy_ci95" in m:
                lo, hi = m["unlearning_accuracy_ci95"]
                interval = f" (95 % CI {lo:.1%}-{hi:.1%}, n={m.get('forget_samples', '?')})"
            print(f"{name:>9}: unlearning accuracy {m['unlearning_accuracy']:.1%}{interval}, "
                  f"retained accuracy {m['retained_accuracy']:.1%}{distances}")
        elif "skipped" in m:
            print(f"{name:>9}: {m['skipped']}")
