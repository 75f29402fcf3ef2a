"""The shapes probe: one network, three heads (shape, colour, texture), judging generated images."""
from __future__ import annotations

import torch

from erase.data.shapes import ATTRIBUTES

HEADS = [len(values) for values in ATTRIBUTES.values()]


@torch.no_grad()
def predict_attributes(probe, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """(N, 3) predicted ids of shape, colour and texture for images in [-1, 1]."""
    probe.eval()
    device = next(probe.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        logits = probe(images[i:i + batch_size].to(device)).cpu().split(HEADS, dim=1)
        out.append(torch.stack([head.argmax(1) for head in logits], dim=1))
    return torch.cat(out)


def attribute_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy per attribute over images whose prompt named it (label -1: the prompt left it open)."""
    result = {}
    for i, name in enumerate(ATTRIBUTES):
        asked = labels[:, i] >= 0
        if asked.any():
            result[name] = (predicted[asked, i] == labels[asked, i]).float().mean().item()
    return result
