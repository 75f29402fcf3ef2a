"""Recipes of the models erase trains on a user's own data (`erase pretrain ddpm|probe --data DIR`).

The class-conditional DDPM's architecture is sized from the image size (as the embedded recipes: digits'
small UNet at 16 px and below, SalUn's CIFAR-10 UNet from 32 px up), with the user's overrides. The probe
that judges its samples is the small CNN for small images and a ResNet-34 from 32 px up. Unlearning,
sampling and evaluation defaults come from the embedded recipe of the same size, so a model of new data
starts from settings that were measured somewhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from erase.config import Recipe, load_recipe
from erase.data.images import DataSummary
from erase.errors import UserError

SMALL = 16  # up to this image side, the digits-sized models and settings


@dataclass
class ArchitectureOptions:
    """What a user may set of the DDPM's UNet; None = sized from the resolution."""

    width: int | None = None  # channels of the first level
    channel_mult: list[int] | None = None  # per level; its length is the number of levels
    layers_per_block: int | None = None
    attention: list[int] | None = None  # image sides (16 = the 16x16 level) with self-attention; [] = none


def levels_for(resolution: int) -> int:
    """Down to a 4x4 bottleneck (8 px: 2 levels, 16: 3, 32: 4 as SalUn's UNet), at most 5 levels."""
    return max(2, min(5, int(math.log2(resolution)) - 1))


def ddpm_architecture(resolution: int, options: ArchitectureOptions | None = None) -> dict:
    """UNet2DModel settings for `resolution`: digits' UNet (32 channels, 1 layer, no attention) up to 16 px,
    SalUn's (128 channels, 2 layers, attention at 16x16, dropout 0.1) from 32 px up."""
    options = options or ArchitectureOptions()
    small = resolution <= SMALL
    mult = options.channel_mult or [1] + [2] * (levels_for(resolution) - 1)
    width = options.width or (32 if small else 128)
    attention = options.attention if options.attention is not None else ([] if small else [16])
    if width % 4 or width <= 0 or any(m <= 0 for m in mult):
        raise UserError(f"--width must be a positive multiple of 4 and --channel-mult positive, got {width} and "
                        f"{mult}")
    if resolution % 2 ** (len(mult) - 1):
        raise UserError(f"{len(mult)} levels halve {resolution} px {len(mult) - 1} times: give fewer "
                        f"--channel-mult entries or another --resolution")
    sides = [resolution // 2 ** i for i in range(len(mult))]
    unknown = sorted(set(attention) - set(sides))
    if unknown:
        raise UserError(f"--attention {unknown[0]}: the UNet's levels are {', '.join(map(str, sides))} px")
    down = ["AttnDownBlock2D" if side in attention else "DownBlock2D" for side in sides]
    return {
        "block_out_channels": [width * m for m in mult],
        "layers_per_block": options.layers_per_block or (1 if small else 2),
        "down_block_types": down,
        "up_block_types": [name.replace("Down", "Up") for name in reversed(down)],
        "norm_num_groups": 32 if width % 32 == 0 and width >= 64 else math.gcd(width, 8),
        "dropout": 0.0 if small else 0.1,
    }


@dataclass
class TrainingOptions:
    """The pretrain section's settings a user may set; None = the default for the data's size."""

    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    ema_decay: float | None = None
    flip: bool = False
    checkpoint_every: int | None = None
    grid_every: int | None = None


def epochs_to_steps(epochs: int, images: int, batch_size: int, minimum: int) -> int:
    return max(minimum, math.ceil(epochs * images / batch_size))


def generator_pretrain(resolution: int, train_images: int, options: TrainingOptions, seed: int) -> dict:
    """The DDPM's training settings: digits' (AdamW 2e-3, cosine, EMA 0.999, batch 64) up to 16 px, SalUn's
    (Adam 2e-4, EMA 0.9999, batch 128) from 32 px up; 100 epochs of the data unless --steps says."""
    small = resolution <= SMALL
    batch = options.batch_size or (64 if small else 128)
    steps = options.steps or epochs_to_steps(100, train_images, batch, 2000)
    settings = {"seed": seed, "steps": steps, "batch_size": batch,
                "lr": options.lr or (0.002 if small else 0.0002),
                "optimizer": "adamw" if small else "adam",
                "lr_schedule": "cosine" if small else "constant",
                "warmup_steps": min(100, steps // 10) if small else 0,
                "ema_decay": options.ema_decay if options.ema_decay is not None else (0.999 if small else 0.9999),
                "checkpoint_every": options.checkpoint_every or (500 if small else 5000),
                "grid_every": options.grid_every if options.grid_every is not None else (500 if small else 5000)}
    if options.flip:
        settings["augment"] = "flip"
    return settings


def unlearning_defaults(small: bool) -> dict:
    """unlearn/methods/evaluate of the embedded DDPM recipe of this size (digits, or SalUn's CIFAR-10)."""
    reference = load_recipe("ddpm-digits" if small else "ddpm-cifar10")
    return {"unlearn": dict(reference.unlearn), "methods": dict(reference.methods),
            "evaluate": dict(reference.evaluate)}


def generator_recipe(name: str, summary: DataSummary, resolution: int, channels: int,
                     architecture: ArchitectureOptions, pretrain: dict, probe: str | None) -> Recipe:
    """The recipe a `pretrain ddpm --data` folder carries: it remembers the data folder and the probe."""
    small = resolution <= SMALL
    return Recipe(
        name=name, family="ddpm", weights=".", probe=probe, data=str(summary.root),
        weights_hint=f"train it with `python -m erase pretrain ddpm --data {summary.root} --out DIR`",
        data_hint="the ImageFolder this model was trained on; pass --data DIR where it lives now",
        resolution=resolution, channels=channels, num_classes=len(summary.class_names),
        class_names=list(summary.class_names), architecture=ddpm_architecture(resolution, architecture),
        scheduler={"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001,
                   "beta_end": 0.02, "clip_sample": True},
        # DDIM with eta 1 on small models (eta 0 with guidance drifts there, see ddpm-digits); SalUn's 100
        # deterministic steps at 32 px and up
        sampling={"num_inference_steps": 20, "guidance_scale": 3.0, "eta": 1.0} if small else
        {"num_inference_steps": 100, "guidance_scale": 3.0, "eta": 0.0},
        train={"cond_drop": 0.1, "saliency_guidance": 3.0},
        pretrain=pretrain, **unlearning_defaults(small))


def probe_kind(resolution: int) -> str:
    return "small-cnn" if resolution <= SMALL else "resnet34-cifar"


def probe_recipe(name: str, summary: DataSummary, resolution: int, channels: int, train_images: int,
                 options: TrainingOptions, seed: int, kind: str | None = None) -> Recipe:
    """The classifier that judges samples of a generator of this data; also a `classify` model of it.

    small-cnn: AdamW 2e-3 with shifts and noise (robust to the grain of generated samples), 30 epochs;
    resnet34-cifar: SGD 0.1 with crop and flip, 40 epochs (SalUn fine-tunes an ImageNet ResNet-34 instead;
    erase downloads nothing, so it trains one from scratch)."""
    kind = kind or probe_kind(resolution)
    small = kind == "small-cnn"
    reference = load_recipe("digits-cnn" if small else "resnet18-cifar10")
    batch = options.batch_size or (64 if small else 128)
    steps = options.steps or epochs_to_steps(30 if small else 40, train_images, batch, 500 if small else 2000)
    if small:
        pretrain = {"optimizer": "adamw", "lr": options.lr or 0.002, "lr_schedule": "cosine"}
        train = {"augment": "shift-noise", "augment_options": {"max_shift": max(1, resolution // 8),
                                                               "noise": 0.1}}
    else:
        pretrain = {"optimizer": "sgd", "lr": options.lr or 0.1, "momentum": 0.9, "weight_decay": 0.0005,
                    "lr_schedule": "cosine", "warmup_steps": min(390, steps // 20)}
        train = {"augment": "crop-flip"}
    return Recipe(
        name=name, family="classifier", weights=".", data=str(summary.root),
        data_hint="the ImageFolder this probe was trained on; pass --data DIR where it lives now",
        resolution=resolution, channels=channels, num_classes=len(summary.class_names),
        class_names=list(summary.class_names), architecture={"type": kind},
        train={**reference.train, **train}, unlearn=dict(reference.unlearn), methods=dict(reference.methods),
        evaluate=dict(reference.evaluate),
        pretrain={"seed": seed, "steps": steps, "batch_size": batch, **pretrain})


def default_name(out: Path, kind: str) -> str:
    """A model's name (run folders are named after it): its folder's name."""
    return Path(out).resolve().name or kind
