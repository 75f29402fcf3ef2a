"""What `erase attack` writes: attacks.json (every figure), the `robustness` block of EVAL.json (per attack and
budget: the success of each model and the gap), a SUMMARY.md section and plots/robustness.png.

`success` is the share of samples the judge calls the forgotten target, after the attack at that budget; the
gap is the unlearned model's success minus the retrained reference's at the same budget. A gap <= 0 means the
unlearned model is as deep as retraining on that attack; the worst gap is the largest over every attack and
budget. Light at import (matplotlib is imported inside the plot).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from erase.attacks import MODELS

TITLES = {"guidance": "guidance sweep", "relearn": "relearning", "embedding": "embedding attack"}


def with_gaps(result: dict[str, Any]) -> dict[str, Any]:
    """Each budget gets `gap` = unlearned success - reference success (None without a reference)."""
    for row in result["budgets"]:
        has = all(which in row for which in ("unlearned", "reference"))
        row["gap"] = row["unlearned"]["success"] - row["reference"]["success"] if has else None
    return result


def worst_gap(attacks: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The largest gap over every attack and budget, and where it comes from."""
    rows = [(row["gap"], name, row["budget"]) for name, result in attacks.items() for row in result["budgets"]
            if row.get("gap") is not None]
    if not rows:
        return None
    gap, name, budget = max(rows, key=lambda r: r[0])
    return {"gap": gap, "attack": name, "budget": budget}


def robustness_block(full: dict[str, Any]) -> dict[str, Any]:
    """EVAL.json's `robustness`: per attack and budget the success of each model (and retained accuracy where
    measured) and the gap; relearning's steps until UA < 50 %; the worst gap."""
    attacks = {}
    for name, result in full["attacks"].items():
        rows = []
        for row in result["budgets"]:
            compact = {"budget": row["budget"], "gap": row["gap"]}
            for which in MODELS:
                if which in row:
                    compact[which] = row[which]["success"]
                    if "retained_accuracy" in row[which]:
                        compact.setdefault("retained_accuracy", {})[which] = row[which]["retained_accuracy"]
            rows.append(compact)
        attacks[name] = {"settings": result["settings"], "budgets": rows}
        if "steps_to_relearn" in result:
            attacks[name]["steps_to_relearn"] = result["steps_to_relearn"]
    return {"command": full["command"], "seed": full["seed"], "attacks": attacks, "worst_gap": full["worst_gap"],
            "reference": full.get("reference"), "seconds": full["seconds"]}


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "-"


def _signed(value: Any) -> str:
    return f"{value * 100:+.0f} pt" if isinstance(value, (int, float)) else "-"


def _steps(value: Any, largest: int) -> str:
    return f"> {largest}" if value is None else str(value)


def summary_lines(robustness: dict[str, Any]) -> list[str]:
    """SUMMARY.md's robustness section (markdown lines)."""
    lines = ["## Robustness: does it stay forgotten?", "", f"`{robustness['command']}`", "",
             "Success = share of samples the probe calls the forgotten target after the attack; gap = unlearned "
             "minus retrained reference at the same budget (<= 0: as deep as retraining on that attack).", ""]
    for name, result in robustness["attacks"].items():
        ra = any("retained_accuracy" in row for row in result["budgets"])
        head = ["budget", *MODELS, "gap"] + ([f"RA {w}" for w in MODELS] if ra else [])
        lines += [f"### {TITLES.get(name, name)}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in result["budgets"]:
            cells = [row["budget"], *(_pct(row.get(w)) for w in MODELS), _signed(row["gap"])]
            if ra:
                cells += [_pct(row.get("retained_accuracy", {}).get(w)) for w in MODELS]
            lines.append("| " + " | ".join(cells) + " |")
        if "steps_to_relearn" in result:
            largest = max(result["settings"]["relearn_steps"])
            lines += ["", "Fine-tuning steps until UA < 50 %:", "", "| data | " + " | ".join(MODELS) + " |",
                      "|" + "---|" * (len(MODELS) + 1)]
            for data, steps in result["steps_to_relearn"].items():
                lines.append(f"| {data} | " + " | ".join(_steps(steps.get(w), largest) if w in steps else "-"
                                                          for w in MODELS) + " |")
        lines.append("")
    worst = robustness.get("worst_gap")
    if worst:
        lines += [f"Worst gap: {_signed(worst['gap'])} ({TITLES.get(worst['attack'], worst['attack'])}, "
                  f"{worst['budget']}).", ""]
    lines += ["![robustness](plots/robustness.png)", ""]
    return lines


def robustness_plot(robustness: dict[str, Any], path: Path) -> Path:
    """One panel per attack: success over its budgets for the original, the unlearned model and the reference."""
    from erase.evaluate.plots import _figure, _save

    attacks = robustness["attacks"]
    fig = _figure(4.2 * len(attacks), 3.6)
    axes = fig.subplots(1, len(attacks), squeeze=False)[0]
    for ax, (name, result) in zip(axes, attacks.items()):
        labels = [row["budget"] for row in result["budgets"]]
        for which, style in zip(MODELS, ("o-", "s-", "^--")):
            values = [row.get(which) for row in result["budgets"]]
            if any(v is not None for v in values):
                ax.plot(range(len(labels)), [float("nan") if v is None else v for v in values], style, label=which)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(TITLES.get(name, name))
        ax.set_ylabel("success (judged the forgotten target)")
        ax.legend(fontsize=7)
    return _save(fig, path)


def compare_values(robustness: dict[str, Any], which: str) -> dict[str, Any]:
    """`erase compare`'s robustness cells of one model (original, unlearned or reference): UA at each guidance
    scale, steps until UA < 50 % per relearning set, the embedding attack's ASR at its largest budget, and for
    the unlearned model the worst gap."""
    values: dict[str, Any] = {}
    attacks = robustness.get("attacks", {})
    for row in attacks.get("guidance", {}).get("budgets", []):
        if row.get(which) is not None:
            values[f"robust_ua_{row['budget'].replace(' ', '_')}"] = 1 - row[which]
    relearn = attacks.get("relearn", {})
    largest = max(relearn.get("settings", {}).get("relearn_steps", [0]))
    for data, steps in relearn.get("steps_to_relearn", {}).items():
        if which in steps:
            values[f"robust_relearn_steps_{data}"] = _steps(steps[which], largest)
    embedding = attacks.get("embedding", {}).get("budgets", [])
    if embedding and embedding[-1].get(which) is not None:
        values["robust_embedding_asr"] = embedding[-1][which]
    if which == "unlearned" and robustness.get("worst_gap"):
        values["robust_worst_gap"] = robustness["worst_gap"]["gap"]
    return values


def compare_columns(keys: list[str]) -> list[tuple[str, str, str]]:
    """(key, title, format) of the robustness cells present, in the order they were first seen."""
    columns = []
    for key in keys:
        if key.startswith("robust_ua_"):
            columns.append((key, "UA " + key[len("robust_ua_"):].replace("_", " "), "{:.1%}"))
        elif key.startswith("robust_relearn_steps_"):
            columns.append((key, f"relearn steps ({key[len('robust_relearn_steps_'):]})", "{}"))
        elif key == "robust_embedding_asr":
            columns.append((key, "embedding ASR", "{:.1%}"))
        elif key == "robust_worst_gap":
            columns.append((key, "worst attack gap", "{:+.1%}"))
    return columns
