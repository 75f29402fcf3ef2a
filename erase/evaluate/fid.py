"""Frechet distance of generated vs real images: `fid_probe` on the probe's own features.

Inception FID needs weights that cannot be downloaded here; a distance on another network's features is a
different number, so it carries its own name and is never reported as FID.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchmetrics.image.fid import FrechetInceptionDistance


class ProbeFeatures(nn.Module):
    """torchmetrics feature extractor: images in [0, 1] -> the probe's penultimate features."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe
        self.num_features = probe.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.probe.features(images.float() * 2 - 1).double()


@torch.no_grad()
def fid_probe(probe, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 512) -> float:
    """FID between two image sets in [-1, 1], on probe features."""
    probe.eval()
    # sync_on_compute=False: under `accelerate launch` only the main process evaluates (erase/processes.py)
    metric = FrechetInceptionDistance(feature=ProbeFeatures(probe), normalize=True, sync_on_compute=False)
    device = next(probe.parameters()).device
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            metric.update(((images[i:i + batch_size] + 1) / 2).to(device), real=is_real)
    return float(metric.compute())
