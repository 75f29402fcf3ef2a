"""Where clean-fid's Inception weights are on this machine (never downloaded), and what config.yaml records
for them. Light (no torch): a bad --inception-weights is refused before the heavy imports."""
from __future__ import annotations

import os
import platform
from pathlib import Path

from erase.errors import UserError

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_ENV = "ERASE_INCEPTION"
FID_MODES = ("clean", "legacy_tensorflow")


def clean_fid_cache_file() -> Path:
    """Where clean-fid itself downloads the weights to (cleanfid/features.py)."""
    return Path("./" if platform.system() == "Windows" else "/tmp") / INCEPTION_FILE


def find_inception_weights(explicit: str | os.PathLike | None = None) -> Path | None:
    """--inception-weights > $ERASE_INCEPTION > clean-fid's cache; a named path that is absent is an error.

    `--inception-weights none` or ERASE_INCEPTION=none turns clean-fid off (fid_probe only), e.g. for quick
    runs, tests, or re-scoring elsewhere a run that named weights this machine lacks.
    """
    off = ("none", "off", "0")
    env = os.environ.get(INCEPTION_ENV, "")
    if str(explicit or "").strip().lower() in off or (not explicit and env.strip().lower() in off):
        return None
    for source, value in (("--inception-weights", explicit), (INCEPTION_ENV, env)):
        if value:
            path = Path(os.path.expanduser(str(value)))
            if path.is_dir():
                path = path / INCEPTION_FILE
            if not path.is_file():
                raise UserError(f"{source} names {path}, which does not exist: give the clean-fid Inception "
                                f"weights file ({INCEPTION_FILE}) or a folder holding it")
            return path
    cache = clean_fid_cache_file()
    return cache if cache.is_file() else None


def inception_setting(value: str) -> str:
    """What config.yaml records for --inception-weights: 'none', or the absolute path."""
    return value if value.strip().lower() in ("none", "off", "0") else str(Path(value).expanduser().resolve())
