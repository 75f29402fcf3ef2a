"""`erase compare`: one table (markdown + CSV) and plots over finished runs of any methods.

Reads only what runs wrote (EVAL.json, history.jsonl), so runs made on other machines compare the same.
Generator runs (`erase class`) and classifier runs (`erase classify`) share the EVAL.json keys UA and RA;
columns a run lacks stay empty. Each distinct original model and target gets one "original" row.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from erase.attacks.report import compare_columns, compare_values
from erase.errors import UserError
from erase.evaluate import plots
from erase.files import write_text_atomic
from erase.runs.folders import COMPLETE_MARKER

# (EVAL.json key, column title, format); columns no run has are left out
COLUMNS = [
    ("unlearning_accuracy", "UA", "{:.1%}"),
    ("unlearning_accuracy_ci95", "UA 95 % CI", None),
    ("forget_samples", "n", "{}"),
    ("retained_accuracy", "RA", "{:.1%}"),
    ("fid_probe", "fid_probe", "{:.2f}"),
    ("fid_clean", "FID (clean-fid)", "{:.2f}"),
    ("kid", "KID (clean-fid)", "{:.4f}"),
    ("fid_legacy_tensorflow", "FID (legacy_tensorflow)", "{:.2f}"),
    ("kid_legacy_tensorflow", "KID (legacy_tensorflow)", "{:.4f}"),
    ("test_accuracy", "TA", "{:.1%}"),
    ("mia_efficacy", "MIA", "{:.1%}"),
    ("avg_gap", "avg gap", "{:.2%}"),
]
FID_KEYS = ("fid_clean", "fid_legacy_tensorflow", "fid_probe")


def load_runs(paths: Sequence[str]) -> list[tuple[Path, dict[str, Any]]]:
    """Finished runs (EVAL.json); unfinished folders are skipped with a note, other paths are errors."""
    runs, skipped = [], []
    for text in paths:
        folder = Path(text)
        if not folder.exists():
            raise UserError(f"{folder} does not exist: give run folders, e.g. runs/*")
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder: give run folders, e.g. runs/*")
        if not (folder / COMPLETE_MARKER).is_file():
            if not (folder / "config.yaml").is_file():
                raise UserError(f"{folder} is not a run folder (no config.yaml or {COMPLETE_MARKER})")
            skipped.append(folder)
            continue
        try:
            report = json.loads((folder / COMPLETE_MARKER).read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{folder / COMPLETE_MARKER} is not valid JSON ({exc.msg})") from None
        if "unlearned" not in report.get("metrics", {}):
            raise UserError(f"{folder / COMPLETE_MARKER} has no metrics.unlearned: not an erase run report")
        runs.append((folder, report))
    for folder in skipped:
        print(f"erase compare: skipping {folder}: unfinished (no {COMPLETE_MARKER})", file=sys.stderr)
    if not runs:
        raise UserError("no finished runs to compare (a run is finished when its folder holds EVAL.json)")
    return runs


def method_label(report: dict[str, Any]) -> str:
    """The method, with `+robust K` for runs made with --robust."""
    robust = report.get("method_report", {}).get("robust")
    return report.get("method", "?") + (f" +robust {robust['inner_steps']}" if robust else "")


def run_labels(runs: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """The method name; when several runs share a method, with their steps, or else their folder names."""
    labels = []
    for folder, report in runs:
        method = method_label(report)
        same = [r for _, r in runs if method_label(r) == method]
        if len(same) == 1:
            labels.append(method)
        elif len({r.get("steps") for r in same}) == len(same):
            labels.append(f"{method}, {report.get('steps')} steps")
        else:
            labels.append(f"{method} ({folder.name})")
    return labels


def _value(metrics: dict[str, Any], report: dict[str, Any], key: str, which: str) -> Any:
    if key == "avg_gap":
        return metrics.get("gap_to_retrain", {}).get("avg_gap") if which != "retrained" else 0.0
    return metrics.get(key)


def table_rows(runs, labels) -> list[dict[str, Any]]:
    """One row per run (its unlearned model), preceded by one row per distinct original model and target."""
    rows, seen, references = [], {}, []  # seen: group -> index of its original row
    for (folder, report), label in zip(runs, labels):
        target = report.get("target", {})
        original = report["metrics"].get("original", {})
        # one original row per model, target, seed and evaluation size (its scores depend on all four)
        group = (report.get("model"), json.dumps(target, sort_keys=True), report.get("seed"),
                 original.get("forget_samples"), original.get("retained_samples"))
        base = {"model": report.get("model"), "target": f"{target.get('kind', '')} {target.get('name', '')}".strip(),
                "seed": report.get("seed")}
        if group not in seen:
            seen[group] = len(rows)
            rows.append({**base, "run": "original", "method": "- (no unlearning)", "steps": "",
                         "seconds": "", **{k: _value(original, report, k, "original") for k, _, _ in COLUMNS}})
        attacked_rows(rows[seen[group]], base, report.get("robustness"), references)
        unlearned = report["metrics"]["unlearned"]
        rows.append({**base, "run": folder.name, "method": label, "steps": report.get("steps"),
                     "seconds": report.get("seconds", {}).get("unlearn"),
                     **{k: _value(unlearned, report, k, "unlearned") for k, _, _ in COLUMNS},
                     **(compare_values(report["robustness"], "unlearned") if "robustness" in report else {})})
    for original_row, reference_row in references:
        rows.insert(next(i for i, row in enumerate(rows) if row is original_row) + 1, reference_row)
    return rows


def attacked_rows(original_row: dict[str, Any], base: dict[str, Any], robustness, references: list) -> None:
    """`erase attack`: the original row gets its attack cells, and a `reference` row (the retrained reference
    under the same attacks) is kept to follow it, once per group."""
    if not robustness or any(k.startswith("robust_") for k in original_row):
        return
    original_row.update(compare_values(robustness, "original"))
    if robustness.get("reference"):
        references.append((original_row, {**base, "run": "reference", "method": "- (retrained reference)",
                                           "steps": "", "seconds": "", **compare_values(robustness, "reference")}))


def robustness_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The `erase attack` columns the rows hold (UA per guidance scale, relearning steps, embedding ASR)."""
    keys = list(dict.fromkeys(k for row in rows for k in row if k.startswith("robust_")))
    return compare_columns(keys)


def _cell(value: Any, fmt: str | None) -> str:
    if value is None or value == "":
        return "-"
    if fmt is None and isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]:.1%} to {value[1]:.1%}"
    try:
        return fmt.format(value) if fmt else str(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: list[dict[str, Any]], columns) -> str:
    head = ["model", "target", "method", "steps"] + [title for _, title, _ in columns] + ["unlearn s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row["model"]), row["target"], row["method"], _cell(row["steps"], "{}")]
        cells += [_cell(row.get(key), fmt) for key, _, fmt in columns]
        cells.append(_cell(row["seconds"], "{:.1f}"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[dict[str, Any]], columns) -> str:
    out = io.StringIO()
    keys = ["run", "model", "target", "seed", "method", "steps", "seconds"] + [key for key, _, _ in columns]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["unlearn_seconds" if k == "seconds" else k for k in keys])
    for row in rows:
        values = []
        for key in keys:
            value = row.get(key)
            if isinstance(value, (list, tuple)):
                value = ";".join(f"{v:.6g}" for v in value)
            values.append("" if value is None else value)
        writer.writerow(values)
    return out.getvalue()


def compare_plots(runs, labels, out: Path) -> list[Path]:
    """UA vs RA and UA vs FID per method; loss curves over steps; per-class accuracy before/after."""
    points = [{"label": label, **report["metrics"]["unlearned"], "original": report["metrics"].get("original", {})}
              for (_, report), label in zip(runs, labels)]
    written = [plots.tradeoff(points, "unlearning_accuracy", "retained_accuracy", out / "ua_vs_ra.png")]
    fid_key = next((k for k in FID_KEYS if any(k in p for p in points)), None)
    if fid_key:
        written.append(plots.tradeoff(points, "unlearning_accuracy", fid_key, out / f"ua_vs_{fid_key}.png"))
    written.append(plots.loss_curves([(label, plots.load_history(folder)) for (folder, _), label in zip(runs, labels)],
                                     out / "loss_curves.png"))
    series, highlight = [], set()
    for (_, report), label in zip(runs, labels):
        metrics = report["metrics"]
        key = plots.per_class_key(metrics["unlearned"])
        if key is None:
            continue
        if not series:
            series.append(("original", metrics.get("original", {}).get(key, {})))
        series.append((label, metrics["unlearned"][key]))
        highlight.update(plots.forgotten_names(report))
    written.append(plots.per_class_bars(series, out / "per_class_accuracy.png", highlight=sorted(highlight)))
    return [p for p in written if p is not None]


def compare_runs(paths: Sequence[str], out: str | Path) -> list[Path]:
    """Write compare.md, compare.csv and the plots into `out`; returns the written paths."""
    runs = load_runs(paths)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder for the table and plots")
    labels = run_labels(runs)
    rows = table_rows(runs, labels)
    columns = [c for c in COLUMNS if any(row.get(c[0]) not in (None, "") for row in rows)] + robustness_columns(rows)
    out.mkdir(parents=True, exist_ok=True)
    pictures = compare_plots(runs, labels, out)
    markdown = ["# Comparison", "", f"{len(runs)} runs: " + ", ".join(f"`{folder}`" for folder, _ in runs), "",
                markdown_table(rows, columns)]
    markdown += ["UA = unlearning accuracy (higher = more forgotten), with its 95 % Wilson interval over n samples; "
                 "RA = retained accuracy. Runs of one original model and target share its `original` row."]
    if any(c[0].startswith("robust_") for c in columns):
        markdown += ["Attack columns (`erase attack`): UA at each guidance scale, fine-tuning steps until UA < 50 % "
                     "on each relearning set, the embedding attack's ASR at its largest budget; the `reference` "
                     "row is the retrained reference under the same attacks, and the worst gap is the unlearned "
                     "model's largest excess over it (attack success, <= 0: as deep as retraining)."]
    markdown += [""]
    markdown += [f"![{p.stem}]({p.name})" for p in pictures]
    write_text_atomic(out / "compare.md", "\n".join(markdown) + "\n")
    write_text_atomic(out / "compare.csv", csv_table(rows, columns))
    return [out / "compare.md", out / "compare.csv", *pictures]


def main(args, command_line: str) -> int:
    written = compare_runs(args.runs, args.out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
