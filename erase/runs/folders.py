"""Run folders: unique names, refusal to clobber. EVAL.json is written last and marks completion."""
from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

from erase.errors import UserError

RUNS_DIR = Path("runs")
COMPLETE_MARKER = "EVAL.json"


def default_run_name(model: str, method: str, target: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    model_name = Path(model).name if "/" in model else model
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stamp}-{model_name}-{method}-{target}").strip("-")
    return slug[:120]


def create_run_folder(out: str | None, name: str, overwrite: bool = False) -> Path:
    """A new, empty run folder. `--out` that exists is refused unless --overwrite; default names never collide."""
    if out:
        folder = Path(out)
        if folder.exists():
            if not overwrite:
                raise UserError(
                    f"output folder {folder} already exists: pass --overwrite to replace it, "
                    f"--resume {folder} to continue it, or choose another --out"
                )
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
