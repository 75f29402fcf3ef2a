"""Peak memory of a short training run per method, each in its own process (peak RSS is per process).

The child loads the model and data, records its RSS, resets the peak (Linux clear_refs), trains `steps`
steps and reports the peak RSS during training (VmHWM) and, on CUDA, torch.cuda.max_memory_allocated. `baseline_mb` is the child's RSS before
training, so `training_mb` = peak - baseline is what the method itself adds.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
import os
import resource
import subprocess
import sys

import torch


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM), so the peak we read afterwards
    belongs to training alone and not to imports or data loading."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(model_name: str, method: str, steps: int) -> dict:
    from erase.train import unlearn

    from bench.targets import load_target

    target = load_target(model_name, method, steps=steps)
    baseline = rss_mb()
    peak_reset = reset_peak_rss()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    unlearn(target.model, target.task, target.method, target.forget_set, target.retain_set, target.settings)
    out = {"baseline_mb": round(baseline, 1), "peak_rss_mb": round(peak_rss_mb(), 1), "peak_reset": peak_reset}
    out["training_mb"] = round(out["peak_rss_mb"] - out["baseline_mb"], 1)
    if torch.cuda.is_available():
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def peak_memory(model_name: str, methods: list[str], steps: int = 5) -> dict:
    def measure(method: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "bench.memory", model_name, method, str(steps)],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    # peak RSS is per process, so children may run side by side (one per core) without changing it
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        rows = dict(zip(methods, pool.map(measure, methods)))
    return {"model": model_name, "steps": steps, "methods": rows}


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
