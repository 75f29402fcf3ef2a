"""Image classification data from a local folder: CIFAR-10 python batches or an ImageFolder.

The CIFAR-10 python batches are pickles. They are read with an unpickler that can build nothing but
numpy arrays (and the built-in containers around them), so a tampered file cannot run code; it is
refused with its name. ImageFolder layouts: DIR/train/<class>/* and DIR/test/<class>/* (or val/), or
DIR/<class>/* split 80/20 per class with a fixed seed.
"""
from __future__ import annotations

import io
import pickle
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from erase.data.datasets import LabelledImages
from erase.errors import UserError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
TEST_FRACTION = 0.2
SPLIT_SEED = 0

# The only globals a pickled numpy array needs; everything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class resolves numpy's array reconstruction and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "encode":
            import codecs

            return codecs.encode
        if name in ("_reconstruct", "scalar"):
            from numpy._core import multiarray

            return getattr(multiarray, name)
        if name == "_frombuffer":
            from numpy._core import numeric

            return numeric._frombuffer
        return getattr(np, name)


def load_numpy_pickle(path: Path):
    try:
        return NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            OSError) as exc:
        raise UserError(f"cannot read {path}: {exc}; it is not a CIFAR python batch (numpy arrays only)") from None


def cifar_folder(root: Path) -> Path | None:
    """The folder holding data_batch_1..5 and test_batch: root itself or root/cifar-10-batches-py."""
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / CIFAR_TEST).is_file() or (folder / CIFAR_TRAIN[0]).is_file():
            return folder
    return None


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise UserError(f"CIFAR-10 file {path} is missing; the folder needs data_batch_1..5 and test_batch")
    batch = load_numpy_pickle(path)
    if not isinstance(batch, dict):
        raise UserError(f"{path} is not a CIFAR python batch (expected a dict)")
    data, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None or data.ndim != 2 or data.shape[1] != 3072 \
            or len(labels) != len(data):
        raise UserError(f"{path} is not a CIFAR-10 python batch (expected data (N, 3072) and N labels)")
    return data.reshape(-1, 3, 32, 32).astype(np.uint8), np.asarray(labels, dtype=np.int64)


def load_cifar10(folder: Path, split: str) -> LabelledImages:
    files = CIFAR_TRAIN if split == "train" else [CIFAR_TEST]
    parts = [_cifar_batch(folder / name) for name in files]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    if labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES):
        raise UserError(f"{folder}: CIFAR-10 labels must be 0..9")
    return LabelledImages(images, labels, list(CIFAR10_CLASSES))


# -- ImageFolder ------------------------------------------------------------------------------------------
def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (resolution, resolution):
                image = image.resize((resolution, resolution), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}; remove or replace the file") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_image_folder(root: Path, resolution: int, channels: int,
                      class_names: list[str] | None = None) -> LabelledImages:
    """DIR/<class>/<image>: class ids follow sorted folder names (or `class_names` when given)."""
    folders = _class_folders(root)
    names = class_names or [f.name for f in folders]
    if not folders:
        raise UserError(f"{root} has no class folders: expected {root}/<class>/<image files>")
    if class_names is not None and sorted(f.name for f in folders) != sorted(class_names):
        raise UserError(f"{root} has classes {[f.name for f in folders]}, expected {class_names}")
    images, labels = [], []
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        for file in files:
            images.append(_read_image(file, resolution, channels))
            labels.append(names.index(folder.name))
    if not images:
        raise UserError(f"{root} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))} "
                        f"files in its class folders)")
    return LabelledImages(torch.from_numpy(np.stack(images)), torch.tensor(labels), list(names))


def stratified_split(data: LabelledImages) -> tuple[LabelledImages, LabelledImages]:
    """80/20 per class, seeded: the same folder always gives the same split."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    test = torch.zeros(len(data), dtype=torch.bool)
    for label in data.labels.unique():
        members = (data.labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        test[members[: int(round(TEST_FRACTION * len(members)))]] = True
    train, held_out = data.subset(~test), data.subset(test)
    return (LabelledImages(train.images, train.labels, train.class_names),
            LabelledImages(held_out.images, held_out.labels, held_out.class_names))


def load_folder(root: Path, resolution: int, channels: int) -> tuple[LabelledImages, LabelledImages]:
    """(train, test) from CIFAR-10 python batches or an ImageFolder layout; bad input is a UserError."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist")
    cifar = cifar_folder(root)
    if cifar is not None:
        if (resolution, channels) != (32, 3):
            raise UserError(f"{root} holds CIFAR-10 (32x32 RGB) but the model expects {resolution}x{resolution} "
                            f"with {channels} channel(s)")
        return load_cifar10(cifar, "train"), load_cifar10(cifar, "test")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train = read_image_folder(root / "train", resolution, channels)
        return train, read_image_folder(test_dir, resolution, channels, train.class_names)
    return stratified_split(read_image_folder(root, resolution, channels))


# -- what a folder holds, before reading it all --------------------------------------------------------------
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
SUMMARY_SAMPLE = 256  # images opened to decide the default resolution and colour


@dataclass
class DataSummary:
    """What pretraining on a folder needs to know before it reads every image: the classes, how many image
    files each holds, the median (shorter) image side and whether the images are grayscale."""

    root: Path
    layout: str  # "cifar10", "train/test" or "class folders"
    class_names: list[str]
    median_side: int
    channels: int  # 1 when every sampled image is grayscale, else 3
    counts: dict[str, int] = field(default_factory=dict)  # image files per class (CIFAR-10: left empty)

    @property
    def train_images(self) -> int:
        """Images in the train split: CIFAR-10's 50,000, the train folder, or 80 % of the class folders."""
        if self.layout == "cifar10":
            return 50_000
        total = sum(self.counts.values())
        return total if self.layout == "train/test" else total - int(round(TEST_FRACTION * total))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _side_and_gray(path: Path) -> tuple[int, bool]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            side = min(image.size)
            if image.mode in GRAY_MODES:
                return side, True
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}; remove or replace the file") from None
    return side, bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def summarize_data(root: Path) -> DataSummary:
    """Classes, image counts, size and colour of CIFAR-10 batches or an ImageFolder (DIR/<class>/*, or
    DIR/train/<class>/* + DIR/test/<class>/*). A folder a class-conditional model cannot learn from (no
    images, an empty class folder, a single class, an unreadable image among those sampled) is a UserError."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist" if not root.exists() else f"{root} is not a folder")
    if cifar_folder(root) is not None:
        return DataSummary(root.resolve(), "cifar10", list(CIFAR10_CLASSES), 32, 3)
    split = (root / "train").is_dir() and any((root / n).is_dir() for n in ("test", "val"))
    classes_root = root / "train" if split else root
    folders = _class_folders(classes_root)
    if not folders:
        raise UserError(f"{classes_root} has no class folders: expected {classes_root}/<class>/<image files>")
    files = {f.name: _image_files(f) for f in folders}
    if not any(files.values()):
        raise UserError(f"{classes_root} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))} files "
                        f"in its class folders)")
    empty = [name for name, found in files.items() if not found]
    if empty:
        raise UserError(f"class folder {classes_root / empty[0]} holds no images: add images or remove the folder")
    if len(files) < 2:
        raise UserError(f"{classes_root} has one class ({folders[0].name}): a class-conditional model needs at "
                        f"least two classes, one folder each")
    everything = [path for found in files.values() for path in found]
    step = max(1, len(everything) // SUMMARY_SAMPLE)
    looks = [_side_and_gray(path) for path in everything[::step][:SUMMARY_SAMPLE]]
    return DataSummary(root.resolve(), "train/test" if split else "class folders", list(files),
                       int(statistics.median(side for side, _ in looks)), 1 if all(g for _, g in looks) else 3,
                       {name: len(found) for name, found in files.items()})


def default_resolution(median_side: int, cap: int = 64) -> int:
    """The median image side rounded to the nearest power of two, between 8 and `cap`."""
    power = 2 ** round(np.log2(max(1, median_side)))
    return int(min(cap, max(8, power)))


def load_classification_data(recipe, data: str | None = None) -> tuple[LabelledImages, LabelledImages]:
    """(train, test) for a classifier recipe: `--data DIR`, else its embedded world, else its `data` folder."""
    from erase.data.worlds import load_world, world_names

    if data is None and recipe.world in world_names():
        train, test = load_world(recipe.world, "train"), load_world(recipe.world, "test")
    else:
        folder = Path(data).expanduser() if data else recipe.data_dir
        if folder is None or not folder.is_dir():
            where = f"no data at {folder}" if folder else "no data folder configured"
            hint = recipe.data_hint or "pass --data DIR (CIFAR-10 python batches or an ImageFolder)"
            raise UserError(f"{recipe.name}: {where}; {hint}")
        train, test = load_folder(folder, recipe.resolution, recipe.channels)
    classes = max(int(train.labels.max()), int(test.labels.max())) + 1
    if classes > recipe.num_classes:
        raise UserError(f"the data has {classes} classes but {recipe.name} classifies {recipe.num_classes}; "
                        f"use a model with as many outputs")
    return train, test
