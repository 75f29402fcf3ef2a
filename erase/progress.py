"""tqdm progress bars that stay quiet in logs: off with TQDM_DISABLE=1, sparse when stderr is not a terminal."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(iterable=None, *, enabled: bool = True, **kwargs):
    disabled = not enabled or os.environ.get("TQDM_DISABLE", "") not in ("", "0")
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)  # a few lines per minute in CI logs, not one per step
    return tqdm(iterable, disable=disabled, dynamic_ncols=True, **kwargs)
