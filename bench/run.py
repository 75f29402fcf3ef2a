"""`make bench`: every benchmark on every embedded model present, written to bench/RESULTS.md and
bench/results.json (and bench/steps_to_forget.png). Ratios are measured side by side in one run.

    python -m bench.run                      # everything (CPU: about 10-15 minutes)
    python -m bench.run --only step_cost --models ddpm-digits --methods ft,salun
    python -m bench.run --gpu                # real-size step cost and memory (needs CUDA)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RETRAIN_MODEL = "ddpm-digits"  # `erase class` vs retraining is measured on the default model
SUITES = ("step_cost", "memory", "steps_to_forget", "class_vs_retrain")
# Real sizes for the GPU table: (recipe, batch size, mixed precision), random weights and random data.
GPU_SPECS = (("ddpm-cifar10", 128, "no"), ("dit-imagenet", 32, "bf16"), ("sd-v1-4", 4, "bf16"))


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def run_cpu(models: list[str], methods: list[str] | None, suites: list[str], save=lambda results: None) -> dict:
    from bench.memory import peak_memory
    from bench.retrain_ratio import class_vs_retrain
    from bench.step_cost import step_costs
    from bench.steps_to_forget import steps_to_forget
    from bench.targets import benchmark_methods, methods_for

    results: dict = {}
    for model in models:
        chosen = methods_for(model, methods or benchmark_methods())
        row: dict = {"suite_seconds": {}}
        started = time.perf_counter()

        def timed(suite, run):
            suite_started = time.perf_counter()
            row[suite] = run()
            row["suite_seconds"][suite] = round(time.perf_counter() - suite_started, 1)

        if "step_cost" in suites:
            timed("step_cost", lambda: step_costs(model, chosen))
        if "memory" in suites:
            timed("memory", lambda: peak_memory(model, chosen))
        if "steps_to_forget" in suites:
            # esd-x / esd-u are esd with another parameter selection: timed above, not scored again here;
            # ft never sees the forget data, so it has no steps to forget
            curves = [m for m in chosen if m not in ("esd-x", "esd-u", "ft")]
            threads = torch.get_num_threads()
            torch.set_num_threads(os.cpu_count() or 1)  # scoring is sampling: let it use every core
            try:
                timed("steps_to_forget", lambda: steps_to_forget(model, curves, every=5 if "cnn" in model else 10))
            finally:
                torch.set_num_threads(threads)
        if "class_vs_retrain" in suites and model == RETRAIN_MODEL:
            timed("class_vs_retrain", lambda: class_vs_retrain(model))
        row["bench_seconds"] = round(time.perf_counter() - started, 1)
        results[model] = row
        save(results)  # a model's numbers are kept even if a later model fails
        print(f"bench: {model} done in {row['bench_seconds']:.0f} s {row['suite_seconds']}", flush=True)
    return results


def run_gpu(methods: list[str] | None) -> dict:
    from bench.step_cost import step_costs
    from bench.targets import benchmark_methods

    chosen = methods or [m for m in ("ft", "salun", "sfron", "igs", "esd") if m in benchmark_methods()]
    out = {}
    for model, batch, precision in GPU_SPECS:
        try:
            torch.cuda.reset_peak_memory_stats()
            out[model] = step_costs(model, chosen, rounds=2, steps=10, batch_size=batch, init="random",
                                    synthetic=True, mixed_precision=precision)
            out[model]["mixed_precision"] = precision
            out[model]["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        except Exception as error:  # a recipe this checkout lacks: say so in the table
            out[model] = {"skipped": f"{type(error).__name__}: {error}"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated; default: every embedded model present")
    parser.add_argument("--methods", help="comma-separated; default: every step-based method")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(SUITES)}")
    parser.add_argument("--gpu", action="store_true", help="real-size step cost on CUDA instead")
    parser.add_argument("--out", default=str(HERE), help="folder for RESULTS.md and results.json")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    from bench.report import write_results
    from bench.targets import available_models

    out = Path(args.out)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    methods = args.methods.split(",") if args.methods else None
    started = time.perf_counter()
    if args.gpu:
        if not torch.cuda.is_available():
            raise SystemExit("bench --gpu: no CUDA device here; the GPU table stays 'not measured'")
        results["gpu"] = {"machine": machine(), "date": _now(), "models": run_gpu(methods)}
    else:
        models = args.models.split(",") if args.models else available_models()
        suites = args.only.split(",") if args.only else list(SUITES)
        results["cpu"] = {"machine": machine(), "date": _now(), "models": {}, "command": "make bench",
                          "seconds": None}

        def save(models_done):
            results["cpu"]["models"] = models_done
            results["cpu"]["seconds"] = round(time.perf_counter() - started, 1)
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2) + "\n")

        run_cpu(models, methods, suites, save)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    write_results(results, out)
    print(f"bench: wrote {out / 'RESULTS.md'} in {time.perf_counter() - started:.0f} s")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":
    main()
