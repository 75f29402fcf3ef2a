"""Unlearning accuracy from a probe classifier on samples generated per class."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from erase.models.pipeline import seeded_generators
from erase.progress import progress


def sample_seeds(seed: int, class_id: int, count: int) -> list[int]:
    """Sample j of a class always gets the same seed, so grids and scores line up across models."""
    return [seed * 1_000_003 + class_id * 10_007 + j for j in range(count)]


@torch.no_grad()
def generate_for_classes(pipeline, counts: dict[int, int], seed: int, sampling: dict,
                         batch_size: int = 256, desc: str = "sample") -> tuple[torch.Tensor, torch.Tensor]:
    """`counts[c]` samples of each class c; returns images in [-1, 1] and their class ids."""
    labels, seeds = [], []
    for class_id, count in counts.items():
        labels += [class_id] * count
        seeds += sample_seeds(seed, class_id, count)
    chunks = []
    for start in progress(range(0, len(labels), batch_size), desc=desc, leave=False):
        gens = seeded_generators(seeds[start:start + batch_size], pipeline.device)
        out = pipeline(class_labels=labels[start:start + batch_size], generator=gens, output_type="pt", **sampling)
        chunks.append(out.images.cpu() * 2 - 1)
    return torch.cat(chunks), torch.tensor(labels)


@torch.no_grad()
def predict(probe, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    probe.eval()
    device = next(probe.parameters()).device
    return torch.cat([probe(images[i:i + batch_size].to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


def wilson_interval(successes: int, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a proportion (sensible at 0 % and 100 %)."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def class_metrics(predictions: torch.Tensor, labels: torch.Tensor, forget: Sequence[int],
                  class_names: Sequence[str]) -> dict:
    """UA = 1 - probe accuracy on the forgotten classes; RA = mean accuracy over the other classes."""
    per_class = {}
    for class_id in labels.unique().tolist():
        chosen = labels == class_id
        per_class[class_names[class_id]] = (predictions[chosen] == class_id).float().mean().item()
    in_forget = torch.isin(labels, torch.tensor(list(forget)))
    forget_correct = int((predictions[in_forget] == labels[in_forget]).sum())
    forget_n = int(in_forget.sum())
    retained = [acc for name, acc in per_class.items() if class_names.index(name) not in forget]
    lo, hi = wilson_interval(forget_n - forget_correct, forget_n)
    return {
        "unlearning_accuracy": 1 - forget_correct / max(1, forget_n),
        "unlearning_accuracy_ci95": [lo, hi],
        "forget_samples": forget_n,
        "forget_hits": forget_correct,  # samples of the forgotten classes still drawn as such (attack success)
        "retained_accuracy": sum(retained) / max(1, len(retained)),
        "retained_samples": int((~in_forget).sum()),
        "per_class_accuracy": per_class,
    }
