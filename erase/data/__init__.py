"""Forget/retain splits and the embedded worlds."""
from erase.data.datasets import LabelledImages, split_by_classes
from erase.data.worlds import load_world

__all__ = ["LabelledImages", "split_by_classes", "load_world"]
