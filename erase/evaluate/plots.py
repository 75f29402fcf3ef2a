"""Plots of runs: forget/retain loss curves, per-class accuracy before/after, and trade-off scatters.

matplotlib's object API (`Figure`, no pyplot): nothing global changes, so these work in scripts, tests and
notebooks alike, without a display. Each function returns the written path, or None when the runs hold no
data for that plot.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

METRIC_LABELS = {
    "unlearning_accuracy": "unlearning accuracy (higher = more forgotten)",
    "retained_accuracy": "retained accuracy",
    "fid_probe": "fid_probe (probe features)",
    "fid_clean": "FID (clean-fid, Inception)",
    "kid": "KID (clean-fid, Inception)",
    "test_accuracy": "test accuracy",
    "mia_efficacy": "MIA-efficacy",
}
PER_CLASS_KEYS = ("per_class_accuracy", "per_class_test_accuracy")


def load_history(folder: Path) -> list[dict[str, float]]:
    """The trainer's per-step losses (history.jsonl); [] when the run has none."""
    path = Path(folder) / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def moving_average(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def loss_curves(histories: Sequence[tuple[str, list[dict[str, float]]]], path: Path) -> Path | None:
    """One panel per loss (forget_loss, retain_loss, ...), one colour per run, over unlearning steps.

    Raw per-step losses are drawn thin, their moving average (over a tenth of the run) thick. Objectives of
    different methods can differ by orders of magnitude (gradient ascent's forget loss runs off to large
    negative values), so a panel whose runs span more than two decades uses a symmetric log scale.
    """
    keys = sorted({k for _, h in histories for r in h for k in r if k.endswith("loss")},
                  key=lambda k: (k != "forget_loss", k != "retain_loss", k))
    checked = any("check_ua" in r for _, h in histories for r in h)
    if not keys and not checked:
        return None
    fig = _figure(4.4 * (len(keys) + checked), 3.6)
    axes = fig.subplots(1, len(keys) + checked, squeeze=False)[0]
    if checked:
        check_panel(axes[-1], histories)
    for ax, key in zip(axes, keys):
        scales = []
        for colour, (label, history) in enumerate(histories):
            points = [(r["step"], r[key]) for r in history if key in r]
            if not points:
                continue
            steps, values = zip(*points)
            window = max(1, len(values) // 10)
            ax.plot(steps, values, color=f"C{colour}", linewidth=0.6, alpha=0.35)
            ax.plot(steps, moving_average(values, window), color=f"C{colour}", linewidth=1.6, label=label)
            scales.append(sorted(abs(v) for v in values)[len(values) // 2])
        positive = [v for v in scales if v > 0]
        if positive and max(positive) / min(positive) > 100:
            ax.set_yscale("symlog", linthresh=min(positive))
        ax.set_title(key.replace("_", " ") + " (each method's own objective)" * (key == "forget_loss"))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def check_panel(ax, histories: Sequence[tuple[str, list[dict[str, float]]]]) -> None:
    """`--steps auto`: the held-out check's UA (solid) and retained score (dashed) at each check, and the
    pooled score of each confirmation (triangles)."""
    for colour, (label, history) in enumerate(histories):
        points = [(r["step"], r["check_ua"], r["check_retained"]) for r in history if "check_ua" in r]
        if not points:
            continue
        steps, ua, retained = zip(*points)
        ax.plot(steps, ua, color=f"C{colour}", marker="o", markersize=3, label=f"{label}: UA")
        ax.plot(steps, retained, color=f"C{colour}", marker="s", markersize=3, linestyle="--",
                label=f"{label}: retained")
        confirmed = [(r["step"], r["check_confirmed"]) for r in history if "check_confirmed" in r]
        if confirmed:  # the pooled retained score of the checks that drew a confirmation
            ax.plot(*zip(*confirmed), color=f"C{colour}", marker="^", markersize=5, linestyle="none",
                    label=f"{label}: retained, confirmed")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("held-out check (--steps auto)")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def per_class_key(metrics: dict[str, Any]) -> str | None:
    return next((k for k in PER_CLASS_KEYS if k in metrics), None)


def per_class_bars(series: Sequence[tuple[str, dict[str, float]]], path: Path, title: str = "",
                   highlight: Sequence[str] = ()) -> Path | None:
    """Grouped bars: accuracy per class, one bar per series (e.g. original, then each unlearned model)."""
    series = [(label, values) for label, values in series if values]
    if not series:
        return None
    classes = list(series[0][1])
    fig = _figure(min(12.0, max(6.0, 0.25 * len(classes) * len(series) + 2)), 3.6)
    ax = fig.subplots()
    width = 0.8 / len(series)
    offset = 1 if series[0][0] == "original" else 0  # the original in grey; runs keep their colours elsewhere
    for i, (label, values) in enumerate(series):
        xs = [c + (i - (len(series) - 1) / 2) * width for c in range(len(classes))]
        colour = "grey" if i < offset else f"C{i - offset}"
        ax.bar(xs, [values.get(name, float("nan")) for name in classes], width, label=label, color=colour)
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 12 else 0)
    for tick in ax.get_xticklabels():
        if tick.get_text() in highlight:  # the forgotten classes
            tick.set_color("crimson")
            tick.set_fontweight("bold")
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("accuracy")
    ax.set_title(title or "accuracy per class (forgotten classes in red)")
    ax.legend(fontsize=8, ncols=min(6, len(series)), loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def tradeoff(points: Sequence[dict[str, Any]], x_key: str, y_key: str, path: Path) -> Path | None:
    """Scatter of `y_key` against `x_key` per run (unlearned), with each original model as a grey cross."""
    points = [p for p in points if isinstance(p.get(x_key), (int, float)) and isinstance(p.get(y_key), (int, float))]
    if not points:
        return None
    fig = _figure(5.6, 4.2)
    ax = fig.subplots()
    log_y = not y_key.endswith("accuracy") and min(p[y_key] for p in points) > 0 and \
        max(p[y_key] for p in points) / min(p[y_key] for p in points) > 20
    if log_y:  # one collapsed model (FID 60) must not squash the differences among the good ones (FID 1-2)
        ax.set_yscale("log")
    originals = set()
    for colour, p in enumerate(points):
        original = p.get("original", {})
        if isinstance(original.get(x_key), (int, float)) and isinstance(original.get(y_key), (int, float)):
            originals.add((original[x_key], original[y_key]))
        ax.errorbar(p[x_key], p[y_key], xerr=_interval(p, x_key), fmt="o", markersize=6, capsize=3,
                    color=p.get("colour", f"C{colour}"))
    for x, y in originals:
        ax.scatter(x, y, marker="x", color="grey")
        ax.annotate("original", (x, y), fontsize=7, color="grey", xytext=(5, -11), textcoords="offset points")
    for key, setter in ((x_key, ax.set_xlim), (y_key, ax.set_ylim)):
        if key.endswith("accuracy"):
            setter(-0.05, 1.1)
    ax.set_xlabel(METRIC_LABELS.get(x_key, x_key))
    ax.set_ylabel(METRIC_LABELS.get(y_key, y_key))
    ax.set_title("unlearned models (bars: 95 % interval)" if x_key == "unlearning_accuracy" else "")
    ax.grid(alpha=0.3)
    _label_points(fig, ax, [(p["label"], p[x_key], p[y_key], p.get("colour", f"C{i}")) for i, p in enumerate(points)])
    return _save(fig, path)


def _label_points(fig, ax, labelled: list[tuple[str, float, float, str]], spacing: float = 11.0) -> None:
    """Label each point in its colour; labels of points close on screen are spread into a column in the
    points' vertical order, never overprinted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # fixes the layout and limits, so data -> pixel is final
    to_pixels = ax.transData.transform
    scale = 72.0 / fig.dpi  # offsets are given in points
    placed: list[tuple[float, float]] = []  # (x, y) pixels of labels already placed
    for label, x, y, colour in sorted(labelled, key=lambda item: -to_pixels((item[1], item[2]))[1]):
        px, py = to_pixels((x, y))
        target = py + 5 / scale
        for qx, qy in sorted(placed, key=lambda q: -q[1]):
            if abs(qx - px) < 60 and abs(qy - target) < spacing / scale:
                target = qy - spacing / scale
        placed.append((px, target))
        right = px > ax.bbox.x0 + 0.7 * ax.bbox.width
        ax.annotate(label, (x, y), fontsize=8, textcoords="offset points", ha="right" if right else "left",
                    xytext=(-7 if right else 7, (target - py) * scale), va="center", color=colour)


def _interval(point: dict[str, Any], key: str):
    """A [[below], [above]] error bar from `<key>_ci95`, or None."""
    bounds = point.get(f"{key}_ci95")
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2):
        return None
    return [[max(0.0, point[key] - bounds[0])], [max(0.0, bounds[1] - point[key])]]


def run_plots(folder: Path, report: dict[str, Any]) -> list[Path]:
    """A run's own plots (plots/ in its folder): its loss curves and its per-class accuracy before/after."""
    folder = Path(folder)
    written = [loss_curves([(report.get("method", "run"), load_history(folder))],
                           folder / "plots" / "loss_curves.png")]
    metrics = report.get("metrics", {})
    key = per_class_key(metrics.get("unlearned", {}))
    if key:
        series = [(name, metrics[name].get(key, {})) for name in ("original", "unlearned", "retrained")
                  if name in metrics]
        written.append(per_class_bars(series, folder / "plots" / "per_class_accuracy.png",
                                      highlight=forgotten_names(report)))
    return [p for p in written if p is not None]


def forgotten_names(report: dict[str, Any]) -> list[str]:
    target = report.get("target", {})
    return [n for n in str(target.get("name", "")).split("+") if n] if target.get("kind") == "class" else []
