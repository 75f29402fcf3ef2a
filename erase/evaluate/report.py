"""SUMMARY.md: a short human table of a run's EVAL.json, with its grids."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from erase.files import write_text_atomic

HEADLINE = [
    ("unlearning_accuracy", "unlearning accuracy (higher = more forgotten)", "{:.1%}"),
    ("retained_accuracy", "retained accuracy", "{:.1%}"),
    ("fid_probe", "fid_probe (retained classes, probe features)", "{:.2f}"),
    ("fid_clean", "FID (clean-fid, Inception, mode clean)", "{:.2f}"),
    ("kid", "KID (clean-fid, Inception, mode clean)", "{:.4f}"),
    ("fid_legacy_tensorflow", "FID (clean-fid, Inception, mode legacy_tensorflow)", "{:.2f}"),
    ("kid_legacy_tensorflow", "KID (clean-fid, Inception, mode legacy_tensorflow)", "{:.4f}"),
    ("nudity_rate", "nudity rate", "{:.1%}"),
    ("test_accuracy", "test accuracy (TA)", "{:.1%}"),
    ("mia_efficacy", "MIA-efficacy (forget set called non-member)", "{:.1%}"),
    ("run_time_seconds", "run time (RTE, s)", "{:.1f}"),
]


PLOTS = [("loss_curves.png", "forget and retain losses over unlearning steps"),
         ("per_class_accuracy.png", "accuracy per class before and after")]


def _cell(metrics: dict[str, Any], key: str, fmt: str) -> str:
    value = metrics.get(key)
    return fmt.format(value) if isinstance(value, (int, float)) else "-"


def metrics_table(metrics: dict[str, dict[str, Any]]) -> list[str]:
    columns = [name for name in ("original", "unlearned", "retrained") if name in metrics]
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for key, label, fmt in HEADLINE:
        if any(key in metrics[c] for c in columns):
            lines.append(f"| {label} | " + " | ".join(_cell(metrics[c], key, fmt) for c in columns) + " |")
    if any("gap_to_retrain" in metrics[c] for c in columns):  # classification: distance to the retrained model
        cells = [_cell(metrics[c].get("gap_to_retrain", {}), "avg_gap", "{:.2%}") for c in columns]
        lines.append("| avg gap to retrained (UA, RA, TA, MIA) | " + " | ".join(cells) + " |")
    return lines


def per_class_table(metrics: dict[str, dict[str, Any]]) -> list[str]:
    columns = [c for c in ("original", "unlearned") if "per_class_accuracy" in metrics.get(c, {})]
    if not columns:
        return []
    names = list(metrics[columns[0]]["per_class_accuracy"])
    lines = ["| class | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name in names:
        cells = [f"{metrics[c]['per_class_accuracy'].get(name, float('nan')):.1%}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def nudity_table(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """Images per NudeNet exposed class on the nudity prompts, original vs unlearned."""
    columns = [c for c in ("original", "unlearned") if "nudity" in metrics.get(c, {})]
    if not columns:
        return []
    counts = {c: metrics[c]["nudity"]["nudity_prompts"] for c in columns}
    first = counts[columns[0]]
    lines = [f"## NudeNet detections on {first['images']} images of nudity prompts (score >= {first['threshold']})",
             "", "| exposed class | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name in first["per_class_counts"]:
        lines.append(f"| {name} | " + " | ".join(str(counts[c]["per_class_counts"][name]) for c in columns) + " |")
    lines.append("| any (nude images) | " + " | ".join(str(counts[c]["nude_images"]) for c in columns) + " |")
    return lines + [""]


def write_summary(folder: Path, report: dict[str, Any]) -> None:
    metrics = report["metrics"]
    target = report["target"]
    seconds = report["seconds"]
    if "unlearn" in seconds:
        how = (f"objective `{report.get('objective')}`, parameters `{report.get('params')}`, {report['steps']} "
               f"steps, seed {report['seed']}; unlearning {seconds['unlearn']:.1f} s (+{seconds.get('prepare', 0):.1f}"
               f" s set-up), evaluation {seconds['evaluate']:.1f} s, total {seconds['total']:.1f} s.")
        auto = report.get("auto_steps")
        if auto:  # --steps auto: where it stopped and why, and what the checks cost
            how += (f" `--steps auto`: stopped at step {auto['stopped_at']} of {auto['budget']}; {auto['note']}; "
                    f"checks {seconds.get('checks', 0):.1f} s.")
    else:  # `erase eval --model`: the unlearned model was made elsewhere
        how = (f"unlearned model `{report.get('unlearned_model')}`, judged against the original with seed "
               f"{report['seed']}; evaluation {seconds['evaluate']:.1f} s, total {seconds['total']:.1f} s.")
    lines = [
        f"# {report['model']}: forget {target['kind']} {target['name']} with {report['method']}",
        "",
        f"`{report['command']}`",
        "",
        how,
        "",
        *metrics_table(metrics),
        "",
    ]
    for name, values in metrics.items():
        if "skipped" in values:
            lines += [f"- {name}: {values['skipped']}", ""]
    unlearned = metrics.get("unlearned", {})
    if "forget_samples" in unlearned:
        lo, hi = unlearned["unlearning_accuracy_ci95"]
        lines += [f"Unlearning accuracy from {unlearned['forget_samples']} samples of the forgotten target "
                  f"(95 % Wilson interval {lo:.1%} to {hi:.1%}).", ""]
    if (folder / "grids").is_dir():
        lines += ["## Samples (same seeds before and after)", "", "![before and after](grids/before_after.png)", ""]
    lines += nudity_table(metrics)
    pictures = [(name, title) for name, title in PLOTS if (folder / "plots" / name).is_file()]
    if pictures:
        lines += ["## Plots", ""] + [f"![{title}](plots/{name})" for name, title in pictures] + [""]
    per_class = per_class_table(metrics)
    if per_class:
        lines += ["## Probe accuracy per class", "", *per_class, ""]
    if "robustness" in report:  # `erase attack`
        from erase.attacks.report import summary_lines

        lines += summary_lines(report["robustness"])
    write_text_atomic(folder / "SUMMARY.md", "\n".join(lines))
