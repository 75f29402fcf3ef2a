"""How fast erase refuses bad input: every refusal of tests/test_bad_input.py (its case tables and the
fixture cases, rebuilt here) plus the cases of issue 19, each as a fresh `python -m erase` process.

Prints the seconds of each refusal, its exit code and its one line. Not a test and no timing is asserted:
the target (every refusal under 2 s on an idle machine) is read from this output.

    python -m bench.refusals                       # this checkout
    python -m bench.refusals --code /path/to/other # another checkout (e.g. the code before a change)
    python -m bench.refusals --write               # also replace the refusals section of bench/RESULTS.md
    python -m bench.refusals -k concept -k eval     # only the cases whose label contains one of these
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_SECONDS = 2.0


@dataclass
class Case:
    label: str
    argv: list[str]
    setup: Callable[[Path], dict] | None = None  # prepares the working folder; returns extra environment


# -- what the test fixtures build ---------------------------------------------------------------------------
def _tiny_recipe(folder: Path) -> dict:
    import yaml

    from tests.conftest import TINY_DDPM

    (folder / "tiny-ddpm.yaml").write_text(yaml.safe_dump(TINY_DDPM))
    return {}


_WEIGHTS: dict[str, Path] = {}


def _tiny_weights(folder: Path) -> Path:
    """A complete tiny pipeline folder (random weights), built once and copied."""
    if "tiny" not in _WEIGHTS:
        import torch

        from erase.config import load_recipe
        from erase.models import load_generator

        _tiny_recipe(folder)
        torch.manual_seed(0)
        bundle = load_generator(load_recipe(str(folder / "tiny-ddpm.yaml")), init="random")
        _WEIGHTS["tiny"] = Path(tempfile.mkdtemp(prefix="refusals-weights-"))
        bundle.pipeline.save_pretrained(_WEIGHTS["tiny"] / "w", safe_serialization=True)
    shutil.copytree(_WEIGHTS["tiny"] / "w", folder / "weights")
    return folder / "weights"


def _damaged(how: str) -> Callable[[Path], dict]:
    def setup(folder: Path) -> dict:
        from tests.test_bad_input import _damage

        _tiny_recipe(folder)
        _damage(_tiny_weights(folder), how)
        return {}

    return setup


def _runs(folder: Path) -> dict:
    """tests/test_bad_input.py's unfinished_run and classify_run fixtures."""
    (folder / "half").mkdir()
    (folder / "half" / "config.yaml").write_text("command: class\nmodel: ddpm-digits\nmethod: ga\ntarget: ['3']\n")
    (folder / "cnn-run").mkdir()
    (folder / "cnn-run" / "config.yaml").write_text(
        "command: classify\nmodel: digits-cnn\nmethod: ft\ntarget: ['class:3']\n")
    (folder / "cnn-run" / "EVAL.json").write_text("{}")
    return {}


def _finished_half(folder: Path) -> dict:
    _runs(folder)
    (folder / "half" / "EVAL.json").write_text("{}")
    (folder / "half" / "model").mkdir()
    (folder / "half" / "model" / "keep").write_text("")
    return {}


def _files(*names: str, content: bytes = b"not a safetensors file") -> Callable[[Path], dict]:
    def setup(folder: Path) -> dict:
        _tiny_recipe(folder)
        for name in names:
            path = folder / name
            if name.endswith("/"):
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        return {}

    return setup


def _empty_concept(folder: Path) -> dict:
    prompts = folder / "prompts"
    shutil.copytree(REPO / "prompts", prompts)
    (prompts / "my-concept").mkdir()
    (prompts / "my-concept" / "forget.txt").write_text("\n   \n")
    return {"ERASE_PROMPTS": str(prompts)}


def cases() -> list[Case]:
    from tests import test_bad_input as t

    tiny = ["--model", "tiny-ddpm.yaml", "--init", "random"]
    found = [Case(f"class {' '.join(a) or '(no --forget)'}", ["class", *a]) for a, _ in t.CLASS_CASES]
    found += [Case(f"sample {' '.join(a)}", ["sample", *a]) for a, _ in t.SAMPLE_CASES]
    found += [Case(f"eval {' '.join(a)}", ["eval", *a], _runs) for a, _ in t.EVAL_CASES]
    found += [Case(f"compare {' '.join(a)}", ["compare", *a, "--out", "cmp"], _runs) for a, _ in t.COMPARE_CASES]
    found += [Case(f"concept {' '.join(a)}", ["concept", *a]) for a, _ in t.CONCEPT_CASES]
    found += [Case(f"class damaged weights: {how}", ["class", "--model", "tiny-ddpm.yaml", "--weights", "weights",
                                                     "--forget", "3"], _damaged(how))
              for how in ("missing", "extra", "misshaped", "truncated")]
    found += [
        Case("class dit-imagenet, weights absent", ["class", "--model", "dit-imagenet", "--forget",
                                                    "golden retriever"]),
        Case("class damaged imagenet probe", ["class", "--model", "dit-imagenet", "--forget", "207", "--init",
                                              "random", "--probe", "probe.safetensors"], _files("probe.safetensors")),
        Case("class not an erase folder", ["class", "--model", "some-folder", "--forget", "3"], _files("some-folder/")),
        Case("class existing --out", ["class", *tiny, "--forget", "3", "--out", "out"], _files("out/keep.txt")),
        Case("pretrain nope", ["pretrain", "nope"]),
        Case("pretrain ddpm-cifar10", ["pretrain", "ddpm-cifar10"]),
        Case("pretrain digits-cnn --rescore", ["pretrain", "digits-cnn", "--rescore"]),
        Case("eval --samples 0", ["eval", "--run", "half", "--samples", "0"], _finished_half),
        Case("eval --inception-weights nowhere.pt", ["eval", "--run", "half", "--inception-weights", "nowhere.pt"],
             _finished_half),
        Case("class --inception-weights nowhere.pt", ["class", "--forget", "3", "--inception-weights", "nowhere.pt"]),
        Case("concept without forget prompts", ["concept", "--prompt", "my concept", "--init", "random", "--tiny"],
             _empty_concept),
        Case("concept, sd-v1-4 weights absent", ["concept", "--prompt", "nudity"]),
        Case("classify --gradient-checkpointing", ["classify", "--forget-class", "3", "--method", "ft",
                                                   "--gradient-checkpointing"]),
        # issue 19
        Case("class ddpm-cifar10, weights absent", ["class", "--model", "ddpm-cifar10", "--forget", "0"]),
        Case("class salun alpha=abc --out X", ["class", "--forget", "3", "--method", "salun", "--set", "alpha=abc",
                                               "--out", "X"]),
        Case("class salun mask_ratio=1.5 --out X", ["class", "--forget", "3", "--method", "salun", "--set",
                                                    "mask_ratio=1.5", "--out", "X"]),
        Case("class salun mask_ratio=0 --out X", ["class", "--forget", "3", "--method", "salun", "--set",
                                                  "mask_ratio=0", "--out", "X"]),
    ]
    return found


def run_case(case: Case, code: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="refusal-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_CACHE": str(folder / "empty-hf-cache"),
               "ERASE_MODELS": str(folder / "models"), "TQDM_DISABLE": "1", "ERASE_INCEPTION": "none"}
        if case.setup:
            env.update(case.setup(folder))
        before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "erase", *case.argv], cwd=folder, env=env,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
        after = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return {"label": case.label, "seconds": seconds, "rc": done.returncode, "lines": len(lines),
            "message": lines[-1] if lines else "", "wrote": sorted(set(after) - set(before))}


def python_baseline(code: Path) -> dict[str, float]:
    """What a bare interpreter and the heavy imports cost on this machine right now (for reading the rest)."""
    out = {}
    for label, statement in (("python -c pass", "pass"), ("import torch", "import torch"),
                             ("import torch, diffusers, accelerate", "import torch, diffusers, accelerate")):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], env={**os.environ, "PYTHONPATH": str(code)}, check=True)
        out[label] = time.perf_counter() - started
    return out


def report(rows: list[dict], baseline: dict[str, float], code: Path) -> str:
    seconds = [r["seconds"] for r in rows]
    slow = [r for r in rows if r["seconds"] >= TARGET_SECONDS]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    which = "this checkout" if code.resolve() == REPO else f"`{code}`"
    lines = [f"Refusal times of {which} ({len(rows)} refusals, `python -m bench.refusals`), {os.cpu_count()} CPUs, "
             f"load average {load:.2f} at the end (other work shares the machine: compare the reference rows):", "",
             "| reference | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in baseline.items()]
    lines += ["", f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s; "
              f"{len(slow)} of {len(rows)} at or over {TARGET_SECONDS:.0f} s", "",
              "| seconds | exit | refusal | message |", "|---|---|---|---|"]
    for r in rows:
        extra = f" (wrote {', '.join(r['wrote'][:3])})" if r["wrote"] else ""
        extra += f" ({r['lines']} lines)" if r["lines"] != 1 else ""
        message = r["message"].replace("|", "\\|")[:110]
        lines.append(f"| {r['seconds']:.2f} | {r['rc']} | {r['label'].replace('|', '/')} | {message}{extra} |")
    return "\n".join(lines)


def write_section(text: str, path: Path = HERE / "RESULTS.md") -> None:
    """Replace (or append) the refusals section; bench/report.py keeps it on rewrite."""
    from bench.report import write_section as write_owned

    write_owned("refusals", "Refusals (bench/refusals.py)", text, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose erase is measured")
    parser.add_argument("-k", action="append", default=[], help="only the cases whose label contains this text "
                        "(repeatable: any of them)")
    parser.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    chosen = [c for c in cases() if not args.k or any(k in c.label for k in args.k)]
    baseline = python_baseline(args.code)
    rows = []
    for case in chosen:
        row = run_case(case, args.code.resolve())
        rows.append(row)
        print(f"{row['seconds']:6.2f} s  exit {row['rc']}  {row['label']}: {row['message'][:100]}", flush=True)
    text = report(rows, baseline, args.code)
    print()
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
