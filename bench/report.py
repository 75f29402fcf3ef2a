"""bench/results.json -> bench/RESULTS.md (+ steps_to_forget.png)."""
from __future__ import annotations

from pathlib import Path

HOW = """How it was measured: `make bench` (= `python -m bench.run`) on the machine below, with
OMP_NUM_THREADS=1 (scoring samples for steps-to-forget uses every core). Step cost: every method trained on the same batch size, 3 interleaved
rounds of 2 warm-up + 8 timed steps, median seconds per step (from batches ready to update done) and its
ratio to a plain fine-tune (`ft`) step; prepare = one-off set-up (masks) before step 1. Memory: a fresh
process per method (two at a time); its peak RSS is reset after loading (Linux clear_refs), so the peak is that of 5
training steps, and "training adds" is that peak minus the RSS after loading. Steps to
forget: unlearning accuracy (UA, forget class 3) and retained accuracy (RA) scored every k steps with 50
forget samples and 10 samples per retained class (probe); the first scored step with UA >= 98 % and RA within
2 points of the original, within the method's default budget (esd-x/esd-u, esd with other parameter
selections, are timed but not scored; ft, which never sees the forget data, neither). `erase class` vs retrain (ddpm-digits): a cold `erase class`
process end to end (unlearn + sample + evaluate + report) against retraining from scratch on the retain data
with the pretrain recipe, timed per step and multiplied by its step count (a lower bound: data loading
and the EMA update fall outside the timed step)."""


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def cpu_sections(cpu: dict) -> list[str]:
    out = []
    for model, r in cpu["models"].items():
        out.append(f"### {model}")
        if "step_cost" in r:
            s = r["step_cost"]
            out.append(f"Step cost (batch {s['batch_size']}; ratio = method step / ft step):\n")
            out.append(_table(["method", "s/step", "ratio to ft", "prepare s", "prepare in ft steps"],
                              [[m, v["seconds_per_step"], v["ratio_to_ft"], v["prepare_seconds"],
                                v["prepare_in_ft_steps"]] for m, v in s["methods"].items()]))
        if "memory" in r:
            out.append(f"\nPeak memory ({r['memory']['steps']} training steps, CPU RSS):\n")
            out.append(_table(["method", "after loading MB", "peak MB", "training adds MB"],
                              [[m, v["baseline_mb"], v["peak_rss_mb"], v["training_mb"]]
                               for m, v in r["memory"]["methods"].items()]))
        if "steps_to_forget" in r:
            rows = []
            for m, v in r["steps_to_forget"]["methods"].items():
                last = v["curve"][-1] if v["curve"] else {}
                rows.append([m, v["budget"], v["steps_to_forget"] or f"not within {v['budget']}",
                             _pct(last.get("unlearning_accuracy")), _pct(last.get("retained_accuracy")),
                             _pct(v["original"]["retained_accuracy"])])
            out.append("\nSteps to forget (UA >= 98 %, RA within 2 points):\n")
            out.append(_table(["method", "budget", "steps to forget", "UA then", "RA then", "RA original"], rows))
        if "class_vs_retrain" in r:
            c = r["class_vs_retrain"]
            e, t = c["erase_class"], c["retrain"]
            retrain_s = t.get("measured_seconds", t["estimated_seconds"])
            how = "measured" if "measured_seconds" in t else f"{t['steps']} steps x {t['seconds_per_step']} s"
            out.append(f"\n`{e['command']}`: {e['wall_seconds']} s wall (UA {_pct(e['unlearning_accuracy'])}, "
                       f"RA {_pct(e['retained_accuracy'])}); retraining without the class: {retrain_s:.0f} s "
                       f"({how}); **retrain / erase class = {c['retrain_over_erase_class']}x**.")
        out.append("")
    return out


def gpu_section(results: dict) -> list[str]:
    out = ["## GPU, real model sizes (random weights, random data)"]
    gpu = results.get("gpu")
    if not gpu:
        out.append("Not measured: no GPU was available in the sessions that wrote this file. "
                   "Run `python -m bench.run --gpu` on a CUDA machine to fill it.")
        return out
    out.append(f"Device: {gpu['machine'].get('cuda_device')}, {gpu['date']}.\n")
    rows = []
    for model, r in gpu["models"].items():
        if "skipped" in r:
            rows.append([model, "-", "-", "-", "-", r["skipped"]])
            continue
        for m, v in r["methods"].items():
            rows.append([model, r["mixed_precision"], r["batch_size"], m, round(1 / v["seconds_per_step"], 2),
                         f"ratio {v['ratio_to_ft']}, peak {r['cuda_max_allocated_mb']} MB (all methods)"])
    out.append(_table(["model", "dtype", "batch", "method", "steps/s", "notes"], rows))
    return out


def plot_curves(cpu: dict, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m, r in cpu["models"].items() if "steps_to_forget" in r]
    if not models:
        return False
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for method, v in cpu["models"][model]["steps_to_forget"]["methods"].items():
            steps = [0] + [p["step"] for p in v["curve"]]
            ua = [v["original"]["unlearning_accuracy"]] + [p["unlearning_accuracy"] for p in v["curve"]]
            ax.plot(steps, ua, marker="o", label=method)
        ax.axhline(0.98, color="grey", linestyle=":")
        ax.set(title=model, xlabel="step", ylabel="unlearning accuracy", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_results(results: dict, out: Path) -> None:
    lines = ["# Benchmarks", "", "Written by `make bench` (bench/run.py); raw numbers in results.json.", ""]
    cpu = results.get("cpu")
    if cpu:
        lines += [f"## CPU ({cpu['date']}, {cpu['seconds']} s)", "", f"Machine: `{cpu['machine']}`", "", HOW, ""]
        lines += cpu_sections(cpu)
        if plot_curves(cpu, out / "steps_to_forget.png"):
            lines += ["![unlearning accuracy over steps](steps_to_forget.png)", ""]
    lines += gpu_section(results)
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n" + kept_sections(out / "RESULTS.md"))


def write_section(name: str, title: str, text: str, path: Path) -> None:
    """Replace (or append) the block between `<!-- NAME:start -->` and `<!-- NAME:end -->` of RESULTS.md, a
    section another script owns; write_results keeps it on rewrite."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n## {title}\n\n{text}\n{end}"
    old = path.read_text() if path.is_file() else ""
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def kept_sections(path: Path) -> str:
    """Sections other scripts own (between `<!-- NAME:start -->` and `<!-- NAME:end -->`, e.g. the one
    bench/refusals.py writes): carried over when `make bench` rewrites the file."""
    import re

    old = path.read_text() if path.is_file() else ""
    blocks = re.findall(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", old, flags=re.S)
    found = [re.search(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", old, flags=re.S).group(0) for name in blocks]
    return "".join(f"\n{block}\n" for block in found)
