"""Frechet distance of generated vs real images, reported under the name its features deserve.

Two backends, chosen by what exists on this machine (nothing is ever downloaded):

- clean-fid, the reference implementation (Inception-V3 torchscript weights `inception-2015-12-05.pt`), when
  the weights are found: `--inception-weights PATH`, else $ERASE_INCEPTION, else clean-fid's own cache
  (/tmp/inception-2015-12-05.pt). Mode `clean` reports `fid_clean` and `kid`; mode `legacy_tensorflow`
  reports `fid_legacy_tensorflow` and `kid_legacy_tensorflow`.
- otherwise torchmetrics' FrechetInceptionDistance on the probe's penultimate features: `fid_probe`. A
  distance on another network's features is a different number, so it is never called FID.

Real-image statistics depend only on the feature network and the real images, so they are computed once and
cached (erase/evaluate/cache.py) under the digest of both.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from erase.errors import UserError
from erase.evaluate.cache import cached

from erase.evaluate.fid_weights import (FID_MODES, INCEPTION_ENV, INCEPTION_FILE,  # noqa: F401  (re-exported)
                                        clean_fid_cache_file, find_inception_weights, inception_setting)


def images_digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def to_uint8_rgb(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (N, C, H, W) -> uint8 (N, H, W, 3), exactly as the images would be saved to PNG files."""
    from erase.sample import to_uint8

    array = to_uint8(images.detach().cpu().float())
    if array.shape[1] == 1:
        array = array.repeat(1, 3, 1, 1)
    return array.permute(0, 2, 3, 1).numpy()


# -- probe features (torchmetrics) ------------------------------------------------------------------------
class ProbeFeatures(nn.Module):
    """torchmetrics feature extractor: images in [0, 1] -> the probe's penultimate features."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe
        self.num_features = probe.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.probe.features(images.float() * 2 - 1).double()


REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


class ProbeFid:
    """`fid_probe`: torchmetrics' FrechetInceptionDistance with the probe as its feature network."""

    def __init__(self, probe, batch_size: int = 512):
        self.probe, self.batch_size = probe.eval(), batch_size
        self.names = ("fid_probe",)
        self.description = {"backend": "torchmetrics", "features": "probe penultimate layer",
                            "metrics": list(self.names)}

    def _metric(self):
        from torchmetrics.image.fid import FrechetInceptionDistance

        # sync_on_compute=False: under `accelerate launch` only the main process evaluates (erase/runs/processes.py)
        return FrechetInceptionDistance(feature=ProbeFeatures(self.probe), normalize=True,
                                        reset_real_features=False, sync_on_compute=False)

    @torch.no_grad()
    def _update(self, metric, images: torch.Tensor, real: bool) -> None:
        device = next(self.probe.parameters()).device
        for i in range(0, len(images), self.batch_size):
            metric.update(((images[i:i + self.batch_size] + 1) / 2).to(device), real=real)

    def real_statistics(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        def compute():
            metric = self._metric()
            self._update(metric, real, True)
            return {name: getattr(metric, name).cpu() for name in REAL_STATES}

        return cached("fid-real", [self.probe], {"backend": "probe", "real": images_digest(real)}, compute)

    def score(self, real_statistics: dict[str, torch.Tensor], fake: torch.Tensor) -> dict[str, float]:
        metric = self._metric()
        for name in REAL_STATES:
            setattr(metric, name, real_statistics[name].to(getattr(metric, name).device))
        self._update(metric, fake, False)
        return {"fid_probe": float(metric.compute())}


# -- clean-fid (Inception) --------------------------------------------------------------------------------
def load_inception(path: Path, mode: str, device) -> nn.Module:
    """clean-fid's InceptionV3W around the torchscript file at `path` (any file name; never downloads)."""
    from cleanfid.inception_torchscript import InceptionV3W

    class LocalInception(InceptionV3W):
        def __init__(self):
            nn.Module.__init__(self)
            try:
                self.base = torch.jit.load(str(path), map_location=device).eval()
            except Exception as exc:
                raise UserError(f"cannot load Inception weights {path} ({type(exc).__name__}): give the "
                                f"torchscript file clean-fid uses ({INCEPTION_FILE})") from None
            self.layers = self.base.layers
            self.resize_inside = mode == "legacy_tensorflow"  # as cleanfid.features.build_feature_extractor

    return LocalInception().eval()


class CleanFid:
    """`fid_clean` + `kid` (mode clean) with clean-fid's resizing, network, Frechet and kernel distances."""

    def __init__(self, weights: Path, mode: str = "clean", batch_size: int = 64):
        if mode not in FID_MODES:
            raise UserError(f"unknown FID mode {mode!r}: choose one of {', '.join(FID_MODES)}")
        self.weights, self.mode, self.batch_size = Path(weights), mode, batch_size
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_inception(self.weights, mode, self.device)
        suffix = "clean" if mode == "clean" else mode
        self.names = (f"fid_{suffix}", "kid" if mode == "clean" else f"kid_{suffix}")
        self.description = {"backend": "clean-fid", "mode": mode, "weights": str(self.weights),
                            "metrics": list(self.names)}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        """clean-fid's get_model_features on images as saved to PNG: resize (mode), then Inception."""
        from cleanfid.fid import get_batch_features
        from cleanfid.resize import build_resizer

        resize = build_resizer(self.mode)
        pixels = to_uint8_rgb(images)
        feats = []
        for i in range(0, len(pixels), self.batch_size):
            chunk = pixels[i:i + self.batch_size]
            if self.mode == "legacy_tensorflow":  # the network resizes inside
                batch = torch.from_numpy(chunk.transpose(0, 3, 1, 2).astype(np.float32))
            else:
                batch = torch.stack([torch.from_numpy(np.asarray(resize(img), dtype=np.float32).transpose(2, 0, 1))
                                     for img in chunk])
            feats.append(get_batch_features(batch, self.model, self.device))
        return np.concatenate(feats)

    def real_statistics(self, real: torch.Tensor) -> dict[str, Any]:
        def compute():
            feats = self.features(real)
            return {"mu": torch.from_numpy(feats.mean(0)), "sigma": torch.from_numpy(np.cov(feats, rowvar=False)),
                    "feats": torch.from_numpy(feats)}

        key = {"backend": "clean-fid", "mode": self.mode, "real": images_digest(real)}
        return cached("fid-real", [self.model], key, compute)

    def score(self, real_statistics: dict[str, Any], fake: torch.Tensor) -> dict[str, float]:
        from cleanfid.fid import frechet_distance, kernel_distance

        feats = self.features(fake)
        fid = frechet_distance(feats.mean(0), np.cov(feats, rowvar=False), real_statistics["mu"].numpy(),
                               real_statistics["sigma"].numpy())
        state = np.random.get_state()  # clean-fid's KID draws subsets from numpy's global RNG: seed it, restore it
        np.random.seed(0)
        try:
            kid = kernel_distance(real_statistics["feats"].numpy(), feats)
        finally:
            np.random.set_state(state)
        return {self.names[0]: float(fid), self.names[1]: float(kid)}


def make_fid_backend(probe, inception_weights: str | None = None, mode: str = "clean"):
    """clean-fid when its weights are found locally, else fid_probe (None when there is no probe either)."""
    if mode not in FID_MODES:
        raise UserError(f"unknown FID mode {mode!r}: choose one of {', '.join(FID_MODES)}")
    weights = find_inception_weights(inception_weights)
    if weights is not None:
        return CleanFid(weights, mode)
    return ProbeFid(probe) if probe is not None else None


def frechet_scores(backend, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """The backend's metrics of `fake` against `real` (real statistics from the cache when available)."""
    return backend.score(backend.real_statistics(real), fake)


def fid_probe(probe, real: torch.Tensor, fake: torch.Tensor, batch_size: int = 512) -> float:
    """FID between two image sets in [-1, 1], on probe features."""
    return frechet_scores(ProbeFid(probe, batch_size), real, fake)["fid_probe"]
