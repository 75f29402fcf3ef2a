"""Small image classifiers: the probes that judge generated samples, and the embedded digits-cnn."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from erase.config import Recipe
from erase.models.io import load_strict


class SmallCNN(ModelMixin, ConfigMixin):
    """Three conv stages and a linear head; `features` gives the penultimate layer (for fid_probe)."""

    @register_to_config
    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128),
                 dropout: float = 0.1):
        super().__init__()
        layers, channels = [], in_channels
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, stride=1 if i == 0 else 2, padding=1),
                       nn.GroupNorm(8, width), nn.SiLU()]
            channels = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


def load_probe(recipe: Recipe) -> tuple[SmallCNN | None, str]:
    """The recipe's probe, or None with the reason it is unavailable (never a made-up score)."""
    folder: Path | None = recipe.probe_dir
    if folder is None:
        return None, f"{recipe.name} has no probe configured"
    if not folder.is_dir():
        return None, f"probe weights not found at {folder}"
    return load_strict(SmallCNN, folder), ""
