"""Cross-entropy losses for image classifiers, behind the same Task contract as the denoising models."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from erase.errors import UserError
from erase.tasks.base import OBJECTIVES, Task

RELABEL_MODES = ("other", "uniform")


class ClassificationTask(Task):
    """Retain loss = cross-entropy; relabel = cross-entropy toward random labels (SalUn's RL).

    `relabel="other"` draws a random label different from the true one (every forget sample gets a wrong
    target); `"uniform"` draws from all classes as SalUn's classification code does (1/K keep their label).
    """

    name = "classification"
    objectives = tuple(o for o in OBJECTIVES if o != "esd")  # ESD needs a guided generator

    def __init__(self, num_classes: int, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 relabel: str = "other"):
        if relabel not in RELABEL_MODES:
            raise UserError(f"relabel must be one of {', '.join(RELABEL_MODES)}, got {relabel!r}")
        self.num_classes = num_classes
        self.augment = augment
        self.relabel = relabel

    def _inputs(self, model, batch) -> torch.Tensor:
        x = batch["x"]
        if self.augment is not None and model.training:
            x = self.augment(x)
        return x

    def training_loss(self, model, batch) -> torch.Tensor:
        return F.cross_entropy(model(self._inputs(model, batch)), batch["label"], reduction="none")

    def relabel_targets(self, labels: torch.Tensor) -> torch.Tensor:
        if self.relabel == "uniform":
            return torch.randint(0, self.num_classes, labels.shape, device=labels.device)
        shift = torch.randint(1, self.num_classes, labels.shape, device=labels.device)
        return (labels + shift) % self.num_classes

    def relabel_loss(self, model, batch) -> torch.Tensor:
        targets = self.relabel_targets(batch["label"])
        return F.cross_entropy(model(self._inputs(model, batch)), targets, reduction="none")


def shift_and_noise(max_shift: int = 1, noise: float = 0.05) -> Callable[[torch.Tensor], torch.Tensor]:
    """Light augmentation that makes a probe robust to the small offsets and grain of generated samples."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,)))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        return (x + noise * torch.randn_like(x)).clamp(-1, 1)

    return augment


def crop_and_flip(padding: int = 4) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-sample random crop after zero padding plus horizontal flip (the usual CIFAR-10 augmentation)."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        padded = F.pad(x, (padding,) * 4, value=-1.0)  # -1 is black in [-1, 1]
        top = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
        left = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
        rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        cropped = padded[batch, channel, rows, cols]
        flip = torch.rand(n, device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)

    return augment


AUGMENTATIONS = {"none": None, "shift-noise": shift_and_noise, "crop-flip": crop_and_flip}


def classification_task(recipe) -> ClassificationTask:
    """The task a classifier recipe trains and unlearns with (`train.augment` with its `train.augment_options`,
    `train.relabel`)."""
    train = recipe.train
    name = train.get("augment", "none")
    if name not in AUGMENTATIONS:
        raise UserError(f"{recipe.name}: unknown augment {name!r}; use one of {', '.join(AUGMENTATIONS)}")
    factory = AUGMENTATIONS[name]
    try:
        augment = factory(**train.get("augment_options", {})) if factory else None
    except TypeError as exc:
        raise UserError(f"{recipe.name}: bad train.augment_options for {name}: {exc}") from None
    return ClassificationTask(recipe.num_classes, augment,
                              relabel=train.get("relabel", "other"))


class AttributeTask(ClassificationTask):
    """Several classification heads on one network (the shapes probe: shape, colour, texture).

    The model's logits are the heads side by side; `batch["label"]` holds one class id per head. The loss
    is the sum of the heads' cross-entropies.
    """

    name = "attribute-classification"

    def __init__(self, heads: list[int], augment: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__(sum(heads), augment)
        self.heads = list(heads)

    def training_loss(self, model, batch) -> torch.Tensor:
        logits = model(self._inputs(model, batch)).split(self.heads, dim=1)
        return sum(F.cross_entropy(head, batch["label"][:, i], reduction="none") for i, head in enumerate(logits))

    def relabel_loss(self, model, batch) -> torch.Tensor:
        raise UserError("relabel is not defined for multi-head probes")
