"""Run folders: unique names, refusal to clobber. EVAL.json is written last and marks completion."""
from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

from erase.config import RunConfig
from erase.errors import UserError

RUNS_DIR = Path("runs")
COMPLETE_MARKER = "EVAL.json"


def default_run_name(model: str, method: str, target: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    model_name = Path(model).name if "/" in model else model
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stamp}-{model_name}-{method}-{target}").strip("-")
    return slug[:120]


def refuse_existing(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not overwrite:
        raise UserError(f"output folder {folder} already exists: pass --overwrite to replace it, "
                        f"--resume {folder} to continue it, or choose another --out")


def check_out_folder(out: str | None, overwrite: bool = False) -> None:
    """`--out` that exists is refused unless --overwrite: commands check it with the other arguments, before any
    work. Under several processes (`accelerate launch`) only create_run_folder checks, on the main process,
    whose refusal reaches every process: an early check elsewhere could see the folder the main process made."""
    if out and int(os.environ.get("WORLD_SIZE", "1") or 1) == 1:
        refuse_existing(Path(out), overwrite)


def create_run_folder(out: str | None, name: str, overwrite: bool = False) -> Path:
    """A new, empty run folder. `--out` that exists is refused unless --overwrite; default names never collide."""
    if out:
        folder = Path(out)
        refuse_existing(folder, overwrite)
        if folder.exists():
            if folder.is_dir():
                shutil.rmtree(folder)
            else:
                folder.unlink()
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir()
        return folder
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        folder = RUNS_DIR / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()  # atomic: two concurrent runs cannot both get the same name
            return folder
        except FileExistsError:
            continue
    raise UserError(f"could not find a free run name under {RUNS_DIR} for {name}; clean up old runs")


def existing_run(path: str) -> Path:
    folder = Path(path)
    if not (folder / "config.yaml").is_file():
        raise UserError(f"{folder} is not a run folder (no config.yaml); give the folder a run printed")
    return folder


def run_folder_config(run: str, give: str) -> tuple[Path, RunConfig]:
    """The folder and config.yaml of a run named on the command line; a missing folder or one without
    config.yaml is a UserError ending in `give` (what the command wants instead)."""
    folder = Path(run)
    if not folder.is_dir():
        raise UserError(f"run folder {folder} does not exist: {give} (runs/<run>)")
    if not (folder / "config.yaml").is_file():
        raise UserError(f"{folder} is not a run folder (no config.yaml): {give}")
    return folder, RunConfig.from_yaml(folder / "config.yaml")


def incomplete_run(run: str) -> tuple[Path, RunConfig]:
    """The folder and config of a run to resume; a complete run is refused. The caller checks the config's
    settings (erase.runs.resolve.check_run_settings) before it loads anything."""
    folder = existing_run(run)
    if (folder / COMPLETE_MARKER).is_file():
        raise UserError(f"{folder} is already complete ({COMPLETE_MARKER} exists); nothing to resume")
    return folder, RunConfig.from_yaml(folder / "config.yaml")


def finished_report(folder: Path, command: str) -> dict:
    """The EVAL.json of a complete run; an incomplete run or a damaged EVAL.json is a UserError saying what to do."""
    if not (folder / COMPLETE_MARKER).is_file():
        raise UserError(f"{folder} is incomplete (no {COMPLETE_MARKER}): finish it with `python -m erase "
                        f"{command} --resume {folder}` first")
    try:
        return json.loads((folder / COMPLETE_MARKER).read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{folder / COMPLETE_MARKER} is not valid JSON ({exc.msg}); re-run the run") from None
