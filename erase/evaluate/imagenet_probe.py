"""The ImageNet probe: a torchvision ResNet-50 whose weights the user supplies (erase downloads nothing).

Weights: a safetensors file (or a folder holding exactly one) with torchvision's resnet50 state dict, e.g.
IMAGENET1K_V2 converted once with
`python -c "import torch, safetensors.torch as s; s.save_file(torch.load('resnet50.pth', weights_only=True),
'resnet50.safetensors')"`. Absent weights are not an error: probe metrics are skipped with the reason.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from erase.errors import UserError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ResNet50Probe(nn.Module):
    """Images in [-1, 1] -> ImageNet logits, with torchvision's eval transform (resize 232, centre crop 224)."""

    num_features = 2048

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        scale = 232 / min(h, w)
        x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True,
                          align_corners=False)
        top, left = (x.shape[-2] - 224) // 2, (x.shape[-1] - 224) // 2
        x = x[..., top:top + 224, left:left + 224]
        return (x - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(self.preprocess(images)))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.features(images))


def weights_file(path: Path) -> Path:
    if path.is_file():
        if path.suffix != ".safetensors":
            raise UserError(f"ResNet-50 probe weights {path} are not safetensors; erase loads safetensors only "
                            f"(convert a .pth once, see erase/evaluate/imagenet_probe.py)")
        return path
    files = sorted(path.glob("*.safetensors"))
    if len(files) != 1:
        raise UserError(f"{path} should hold exactly one .safetensors file with ResNet-50 weights, found "
                        f"{len(files)}")
    return files[0]


def load_resnet50_probe(path: Path | None) -> tuple[ResNet50Probe | None, str]:
    """The probe, or None and why it is unavailable; damaged weights are a UserError (checked before work)."""
    if path is None:
        return None, "no ResNet-50 probe weights configured (pass --probe FILE.safetensors)"
    if not path.exists():
        return None, f"ResNet-50 probe weights not found at {path} (pass --probe FILE.safetensors)"
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from torchvision.models import resnet50

    file = weights_file(path)
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{file} is corrupt or truncated ({str(exc).splitlines()[0]}); restore it") from exc
    from erase.models.io import check_state_dict

    net = resnet50()
    for key in net.state_dict():  # older torchvision checkpoints predate BatchNorm's step counter
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.tensor(0)
    check_state_dict(net, state, file)
    net.load_state_dict(state, strict=True)
    return ResNet50Probe(net).eval(), ""
