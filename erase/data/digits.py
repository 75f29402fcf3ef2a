"""The embedded digits world: scikit-learn's bundled 8x8 digits, upsampled to 16x16, in [-1, 1]."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from erase.data.datasets import LabelledImages

CLASS_NAMES = [str(i) for i in range(10)]
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@lru_cache(maxsize=1)
def _all_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N,1,8,8) in [0,1]
    images = F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1) * 2 - 1
    return images, torch.from_numpy(bunch.target.astype(np.int64))


@lru_cache(maxsize=4)
def _split_indices(seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, stratified train/test split (1,437 / 360 images)."""
    from sklearn.model_selection import train_test_split

    _, labels = _all_digits()
    index = np.arange(len(labels))
    train, test = train_test_split(
        index, test_size=TEST_FRACTION, random_state=seed, stratify=labels.numpy()
    )
    return np.sort(train), np.sort(test)


def load_digits_world(split: str = "train") -> LabelledImages:
    """`train`, `test`, or `all` of the digits world."""
    images, labels = _all_digits()
    if split == "all":
        return LabelledImages(images, labels, CLASS_NAMES)
    train, test = _split_indices()
    chosen = torch.from_numpy({"train": train, "test": test}[split])
    return LabelledImages(images[chosen], labels[chosen], CLASS_NAMES)
