"""Cross-entropy losses for image classifiers, behind the same Task contract as the denoising models."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from erase.tasks.base import Task


class ClassificationTask(Task):
    """Retain loss = cross-entropy; relabel = cross-entropy toward a random other class (SalUn's RL)."""

    name = "classification"

    def __init__(self, num_classes: int, augment: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.num_classes = num_classes
        self.augment = augment

    def _inputs(self, model, batch) -> torch.Tensor:
        x = batch["x"]
        if self.augment is not None and model.training:
            x = self.augment(x)
        return x

    def training_loss(self, model, batch) -> torch.Tensor:
        return F.cross_entropy(model(self._inputs(model, batch)), batch["label"], reduction="none")

    def relabel_loss(self, model, batch) -> torch.Tensor:
        labels = batch["label"]
        shift = torch.randint(1, self.num_classes, labels.shape, device=labels.device)
        return F.cross_entropy(model(self._inputs(model, batch)), (labels + shift) % self.num_classes,
                               reduction="none")


def shift_and_noise(max_shift: int = 1, noise: float = 0.05) -> Callable[[torch.Tensor], torch.Tensor]:
    """Light augmentation that makes a probe robust to the small offsets and grain of generated samples."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,)))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        return (x + noise * torch.randn_like(x)).clamp(-1, 1)

    return augment
