"""Forget sets for classifiers: a whole class, a seeded random fraction, or the sample ids in a file.

A forget set is a boolean mask over the training split; samples are named by their stable ids (their
position in the training split), so the same ids mean the same images in `classify`, in index files and in
the update logs that `pretrain --log-updates` writes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erase.errors import UserError

if TYPE_CHECKING:  # light at import: `erase classify` checks its forget set before the heavy imports
    import torch

KINDS = ("class", "random", "indices")


@dataclass
class ForgetSpec:
    """What to forget: kind (class / random / indices) and its value; random sets also use `seed`."""

    kind: str
    value: str
    seed: int = 0

    def as_target(self) -> list[str]:
        """The form stored in config.yaml (RunConfig.target)."""
        return [f"{self.kind}:{self.value}"]

    @classmethod
    def from_target(cls, target: list[str], seed: int) -> "ForgetSpec":
        if len(target) != 1 or ":" not in target[0]:
            raise UserError(f"config target {target!r} is not a classify forget set (kind:value)")
        kind, value = target[0].split(":", 1)
        return cls(kind, value, seed)


def spec_from_options(forget_class: str | None, forget_random: str | None, forget_indices: str | None,
                      seed: int) -> ForgetSpec:
    given = [(k, v) for k, v in zip(KINDS, (forget_class, forget_random, forget_indices)) if v is not None]
    if not given:
        raise UserError("nothing to forget: pass --forget-class C, --forget-random FRACTION or --forget-indices FILE")
    if len(given) > 1:
        raise UserError("pass exactly one of --forget-class, --forget-random and --forget-indices")
    kind, value = given[0]
    return ForgetSpec(kind, str(value), seed)


def check_spec(spec: ForgetSpec, class_index=None) -> None:
    """What can be checked before the data are loaded: the class (when `class_index` knows the classes), the
    fraction, and that the index file exists."""
    if spec.kind == "class" and class_index is not None:
        class_index(spec.value)
    elif spec.kind == "random":
        random_fraction(spec.value)
    elif spec.kind == "indices" and not Path(spec.value).expanduser().is_file():
        raise UserError(f"--forget-indices file {Path(spec.value).expanduser()} does not exist")


def random_fraction(value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        raise UserError(f"--forget-random must be a fraction in (0, 1), got {value!r}") from None
    if not 0 < fraction < 1:
        raise UserError(f"--forget-random must be a fraction in (0, 1), got {value!r}")
    return fraction


def random_ids(size: int, fraction: float, seed: int) -> torch.Tensor:
    """`round(fraction * size)` ids drawn without replacement by a generator seeded with `seed`, sorted."""
    import torch

    count = max(1, int(round(fraction * size)))
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(size, generator=generator)[:count].sort().values


def read_index_file(path: str, size: int) -> torch.Tensor:
    """Sample ids, one integer per line (blank lines and # comments ignored); each in 0..size-1."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"--forget-indices file {file} does not exist")
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --forget-indices file {file}: {exc}") from None
    ids = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.lstrip("-").isdigit():
            raise UserError(f"{file}:{number}: {text!r} is not a sample id; write one integer per line")
        value = int(text)
        if not 0 <= value < size:
            raise UserError(f"{file}:{number}: sample id {value} is out of range: the training set has ids "
                            f"0..{size - 1}")
        ids.append(value)
    if not ids:
        raise UserError(f"--forget-indices file {file} names no samples")
    return torch.tensor(sorted(set(ids)))


def forget_mask(spec: ForgetSpec, labels: torch.Tensor, class_index) -> torch.Tensor:
    """Boolean mask over the training split; `class_index` resolves a class id or name (Recipe.class_index)."""
    import torch

    size = len(labels)
    mask = torch.zeros(size, dtype=torch.bool)
    if spec.kind == "class":
        mask = labels == class_index(spec.value)
        if not mask.any():
            raise UserError(f"the training data has no samples of class {spec.value}")
    elif spec.kind == "random":
        mask[random_ids(size, random_fraction(spec.value), spec.seed)] = True
    elif spec.kind == "indices":
        mask[read_index_file(spec.value, size)] = True
    else:
        raise UserError(f"unknown forget set kind {spec.kind!r}: use one of {', '.join(KINDS)}")
    if bool(mask.all()):
        raise UserError("the forget set is the whole training set: keep some data to retain")
    return mask


def describe(spec: ForgetSpec, mask: torch.Tensor, class_names: list[str], class_index) -> dict[str, Any]:
    """The `target` entry of EVAL.json."""
    count = int(mask.sum())
    if spec.kind == "class":
        index = class_index(spec.value)
        return {"kind": "class", "value": index, "name": class_names[index], "forget_samples": count}
    ids = mask.nonzero().flatten()
    digest = hashlib.sha256(ids.numpy().tobytes()).hexdigest()[:16]
    if spec.kind == "random":
        return {"kind": "random", "value": float(spec.value), "seed": spec.seed,
                "name": f"random{float(spec.value):g}-seed{spec.seed}", "forget_samples": count, "ids_sha256": digest}
    return {"kind": "indices", "value": str(spec.value), "name": Path(spec.value).stem, "forget_samples": count,
            "ids_sha256": digest}
