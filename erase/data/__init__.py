"""Forget/retain splits and the embedded worlds.

Light at import: the names below load their (torch-heavy) modules on first use, so that modules such as
erase.data.prompts can check a command's arguments before torch is imported.
"""
import importlib

_EXPORTS = {"LabelledImages": "erase.data.datasets", "split_by_classes": "erase.data.datasets",
            "load_world": "erase.data.worlds"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'erase.data' has no attribute {name!r}")
