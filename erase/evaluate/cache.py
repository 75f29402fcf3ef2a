"""Cache of evaluations keyed by the exact weights and settings, so the original model is scored once.

The key hashes every tensor of the evaluated model and of the probe, plus the evaluation settings: a cache
hit is the same computation, not an approximation. Location: $ERASE_CACHE or ~/.cache/erase.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

CACHE_DIR = Path(os.environ.get("ERASE_CACHE", Path.home() / ".cache" / "erase"))


def weights_digest(*modules: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached(kind: str, modules: list[torch.nn.Module], settings: dict[str, Any], compute: Callable[[], Any]):
    """`compute()` once per (weights, settings); later calls load the stored result (torch.save, weights_only)."""
    if os.environ.get("ERASE_NO_CACHE"):
        return compute()
    key = hashlib.sha256((weights_digest(*modules) + json.dumps(settings, sort_keys=True, default=str))
                         .encode()).hexdigest()[:32]
    path = CACHE_DIR / kind / f"{key}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a damaged cache entry is recomputed, never trusted
            path.unlink(missing_ok=True)
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(result, tmp)
    tmp.replace(path)
    return result
