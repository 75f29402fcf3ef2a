"""Image classifiers: the probes that judge generated samples, digits-cnn and resnet18-cifar10.

The `classifier` family: `load(recipe, folder)` gives a `ClassifierBundle`. The recipe's
`architecture.type` names the class (small-cnn, resnet18-cifar); the other architecture keys are its
config. Weights are save_pretrained folders (config.json + safetensors), loaded strictly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from erase.config import RECIPE_FILE, Recipe, load_recipe, save_recipe
from erase.errors import UserError
from erase.models.io import load_config_json, load_strict


class SmallCNN(ModelMixin, ConfigMixin):
    """Three conv stages and a linear head; `features` gives the penultimate layer (for fid_probe)."""

    @register_to_config
    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128),
                 dropout: float = 0.1):
        super().__init__()
        layers, channels = [], in_channels
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, stride=1 if i == 0 else 2, padding=1),
                       nn.GroupNorm(min(8, width), width), nn.SiLU()]
            channels = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


def cifar_resnet(depth: int, in_channels: int, num_classes: int) -> nn.Module:
    """torchvision ResNet-18/34 for 32x32 inputs: 3x3 stride-1 stem and no max-pool (as SalUn's CIFAR models)."""
    from torchvision.models import resnet18, resnet34

    net = {18: resnet18, 34: resnet34}[depth](num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


class ResNetCifarFeatures:
    """`features` (the penultimate layer, for fid_probe) and `forward` of a CIFAR-stem ResNet in `self.net`."""

    @property
    def num_features(self) -> int:
        return self.net.fc.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.relu(net.bn1(net.conv1(x)))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.features(x))


class ResNet18Cifar(ResNetCifarFeatures, ModelMixin, ConfigMixin):
    """ResNet-18 for 32x32 inputs: the resnet18-cifar10 classifier."""

    @register_to_config
    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.net = cifar_resnet(18, in_channels, num_classes)


class ResNet34Cifar(ResNetCifarFeatures, ModelMixin, ConfigMixin):
    """ResNet-34 for 32x32 inputs: the probe that judges 32x32 RGB samples, as SalUn's classifier evaluation
    (which fine-tunes an ImageNet ResNet-34 at 224 px; erase trains it from scratch at the data's size)."""

    @register_to_config
    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.net = cifar_resnet(34, in_channels, num_classes)


ARCHITECTURES: dict[str, type[ModelMixin]] = {"small-cnn": SmallCNN, "resnet18-cifar": ResNet18Cifar,
                                              "resnet34-cifar": ResNet34Cifar}


def architecture_class(recipe: Recipe) -> tuple[type[ModelMixin], dict]:
    config = dict(recipe.architecture)
    kind = config.pop("type", "small-cnn")
    if kind not in ARCHITECTURES:
        raise UserError(f"{recipe.name}: unknown classifier architecture {kind!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[kind], config


def build_classifier(recipe: Recipe) -> ModelMixin:
    """Random weights (from the current torch seed) of the recipe's architecture."""
    cls, config = architecture_class(recipe)
    return cls(in_channels=recipe.channels, num_classes=recipe.num_classes, **config)


@dataclass
class ClassifierBundle:
    """A loaded classifier and its recipe; `model` is what unlearning trains."""

    recipe: Recipe
    model: ModelMixin

    def save(self, folder: Path) -> None:
        """save_pretrained layout (config.json + safetensors) plus the recipe, so the folder is a --model."""
        self.model.save_pretrained(str(folder), safe_serialization=True)
        save_recipe(self.recipe, folder, weights=".")


def load(recipe: Recipe, folder: Path | None) -> ClassifierBundle:
    """`folder=None` builds random weights from the recipe (--init random, retraining)."""
    if folder is None:
        return ClassifierBundle(recipe, build_classifier(recipe))
    cls, _ = architecture_class(recipe)
    saved = load_config_json(folder).get("_class_name")
    if saved is not None and saved != cls.__name__:
        raise UserError(f"{folder} holds a {saved}, but {recipe.name} expects a {cls.__name__}")
    model = load_strict(cls, folder)
    if model.config.num_classes != recipe.num_classes:
        raise UserError(f"{folder} has {model.config.num_classes} classes; {recipe.name} needs {recipe.num_classes}")
    return ClassifierBundle(recipe, model)


def probe_hint(recipe: Recipe, folder: Path | str = "PROBE") -> str:
    """The one command that builds a probe for this model's data."""
    data = recipe.data_dir or "DIR"
    return f"train one with `python -m erase pretrain probe --data {data} --out {folder}`"


def load_probe(recipe: Recipe) -> tuple[ModelMixin | None, str]:
    """The recipe's probe, or None with the reason it is unavailable (never a made-up score).

    Any classifier architecture loads; a probe folder written by `erase pretrain probe` carries its recipe,
    and its classes, image size and colour must be the generator's (a UserError otherwise)."""
    folder: Path | None = recipe.probe_dir
    if folder is None:
        return None, f"{recipe.name} has no probe configured; {probe_hint(recipe)} and pass --probe PROBE"
    if not folder.is_dir():
        return None, f"probe weights not found at {folder}; {probe_hint(recipe, folder)}"
    check_probe_matches(recipe, folder)
    saved = load_config_json(folder).get("_class_name", SmallCNN.__name__)
    classes = {cls.__name__: cls for cls in ARCHITECTURES.values()}
    if saved not in classes:
        raise UserError(f"probe {folder} holds a {saved}; erase's probes are {', '.join(sorted(classes))}")
    return load_strict(classes[saved], folder), ""


def check_probe_matches(recipe: Recipe, folder: Path) -> None:
    """A probe trained by `erase pretrain probe` knows its classes and image size: they must be the generator's."""
    if not (folder / RECIPE_FILE).is_file():
        return  # a bare probe (the embedded worlds' probes): only its number of classes can be checked
    probe = load_recipe(str(folder))
    if [n.lower() for n in probe.class_names] != [n.lower() for n in recipe.class_names]:
        raise UserError(f"probe {folder} classifies {probe.class_names}, but {recipe.name} draws "
                        f"{recipe.class_names}: {probe_hint(recipe)}")
    if (probe.resolution, probe.channels) != (recipe.resolution, recipe.channels):
        raise UserError(f"probe {folder} was trained on {probe.resolution}x{probe.resolution} images with "
                        f"{probe.channels} channel(s), but {recipe.name} draws {recipe.resolution}x"
                        f"{recipe.resolution} with {recipe.channels}: {probe_hint(recipe)}")
