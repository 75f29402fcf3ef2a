"""In-memory labelled image sets and the forget/retain split by class."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset


@dataclass
class LabelledImages(Dataset):
    """Images in [-1, 1] (N, C, H, W) with integer labels; items are dicts the tasks understand."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.images[index], "label": self.labels[index], "index": torch.tensor(index)}

    def subset(self, mask: torch.Tensor) -> "LabelledImages":
        return LabelledImages(self.images[mask], self.labels[mask], self.class_names)

    def of_classes(self, classes: list[int]) -> "LabelledImages":
        return self.subset(torch.isin(self.labels, torch.tensor(classes)))


def split_by_classes(data: LabelledImages, forget: list[int]) -> tuple[LabelledImages, LabelledImages]:
    """Forget set = every image of the forgotten classes; retain set = everything else."""
    in_forget = torch.isin(data.labels, torch.tensor(forget))
    return data.subset(in_forget), data.subset(~in_forget)
