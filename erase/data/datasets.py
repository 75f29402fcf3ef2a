"""In-memory labelled image sets and the forget/retain split by class."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset


@dataclass
class LabelledImages(Dataset):
    """Images in [-1, 1] (N, C, H, W) with integer labels; items are dicts the tasks understand.

    `images` may also be uint8 in [0, 255] (large sets such as CIFAR-10 stay four times smaller); items are
    converted to [-1, 1] floats one at a time. `ids` are stable sample ids within the source split (their
    position in it unless given), kept through `subset`, so a forget set can be named across runs and
    matched against logged training batches; items carry them as "index".
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    ids: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.ids is None:
            self.ids = torch.arange(len(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index) -> torch.Tensor:
        x = self.images[index]
        return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.image(index), "label": self.labels[index], "index": self.ids[index]}

    def subset(self, mask: torch.Tensor) -> "LabelledImages":
        return LabelledImages(self.images[mask], self.labels[mask], self.class_names, self.ids[mask])

    def of_classes(self, classes: list[int]) -> "LabelledImages":
        return self.subset(torch.isin(self.labels, torch.tensor(classes)))


def split_by_classes(data: LabelledImages, forget: list[int]) -> tuple[LabelledImages, LabelledImages]:
    """Forget set = every image of the forgotten classes; retain set = everything else."""
    in_forget = torch.isin(data.labels, torch.tensor(forget))
    return data.subset(in_forget), data.subset(~in_forget)


def split_by_mask(data: LabelledImages, in_forget: torch.Tensor) -> tuple[LabelledImages, LabelledImages]:
    """Forget set = the samples where `in_forget` is True; retain set = the rest."""
    return data.subset(in_forget), data.subset(~in_forget)


OPTIONAL_PROMPT_IDS = ("anchor_ids", "concept_ids", "neutral_ids")


@dataclass
class PromptImages(Dataset):
    """Images in [-1, 1] with the token ids of their prompts (text-to-image training and forget data).

    Optional, one row per image: `anchor_ids`, the prompts the relabel objective redirects each image to;
    `concept_ids`, the concept prompt ESD steers away from; `neutral_ids`, the image's prompt with the concept
    taken out (ESD's neutral prompt when it trains on the forget prompts themselves).
    """

    images: torch.Tensor | None  # None: token ids alone (a run that draws no images, erase.data.concept_sets)
    input_ids: torch.Tensor
    anchor_ids: torch.Tensor | None = None
    concept_ids: torch.Tensor | None = None
    neutral_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, index: torch.Tensor) -> "PromptImages":
        """The images at `index` (a mask or indices) with every prompt's ids."""
        optional = {name: None if getattr(self, name) is None else getattr(self, name)[index]
                    for name in OPTIONAL_PROMPT_IDS}
        images = None if self.images is None else self.images[index]
        return PromptImages(images, self.input_ids[index], **optional)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        x = self.images[index]
        item = {"x": x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x, "input_ids": self.input_ids[index]}
        for name in OPTIONAL_PROMPT_IDS:
            ids = getattr(self, name)
            if ids is not None:
                item[name] = ids[index]
        return item
