"""ddpm-seed family: the class-conditional UNet of the DDIM codebase that SalUn, SFR-on and Selective Amnesia
train on CIFAR-10 (their `Conditional_Model`), as a diffusers ModelMixin of our own.

It is not UNet2DModel: the class enters through a learned table plus a learned null vector (classifier-free
guidance), separate two-layer time and class MLPs, and in every ResNet block one linear projection of the
concatenated [time, class] embedding. Module names follow the seed code's, so its state dicts load key for
key (`erase import FILE --as ddpm-seed`, erase/models/convert/ddpm_seed.py).

Honest about two quirks of the seed code:
- its ResNet blocks size the class part of that projection at 512 whatever `ch` is, while its class MLP is
  4 * ch wide; the two agree only at ch = 128 (SalUn's CIFAR-10 model). Here the width is one config field,
  `class_embed_dim`, used by both, so a model always runs; a seed checkpoint with ch != 128 cannot have run in
  its own code and is refused at import with that explanation.
- its guidance is (1 + w) * eps(c) - w * eps(null) (SalUn samples at w = 2), the form of Ho & Salimans'
  paper, not diffusers' eps(null) + s * (eps(c) - eps(null)). The config says so (`guidance_form: "1+w"`),
  and the sampler and the saliency loss read it, so `guidance_scale: 2` means the paper's w = 2.

Folders use the class-conditional DDPM layout (model_index.json, unet/, scheduler/).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, DDPMScheduler, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.utils import BaseOutput
from torch import nn

from erase.config import Recipe
from erase.errors import UserError
from erase.models import GeneratorBundle
from erase.models.ddpm import build_scheduler, load_scheduler
from erase.models.io import load_strict
from erase.models.pipeline import GUIDANCE_FORMS, ClassConditionalPipeline
from erase.tasks.denoising import ClassLabelAdapter


@dataclass
class SeedUNetOutput(BaseOutput):
    """The denoiser's output, as diffusers' UNets return it (`.sample`)."""

    sample: torch.Tensor


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the [time, class] embedding added after the first conv through one linear."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, dropout: float, groups: int,
                 eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.temb_cemb_proj = nn.Linear(emb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # the seed code's channel-changing shortcut is a 1x1 conv ("network in network")
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """`emb`: SiLU of the concatenated time and class embeddings (the same for every block)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_cemb_proj(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, 1x1 convs for q, k, v and the output, residual."""

    def __init__(self, channels: int, groups: int, eps: float):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        h = self.norm(x)
        q, k, v = (conv(h).reshape(b, 1, c, height * width).transpose(2, 3) for conv in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c)) v, one head of width c
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, height, width))


class Downsample(nn.Module):
    """Stride-2 3x3 conv after padding right and bottom by one (the seed code's asymmetric padding), or
    2x2 average pooling."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.avg_pool2d(x, 2)
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then an optional 3x3 conv."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x if self.conv is None else self.conv(x)


class Level(nn.Module):
    """One resolution of the encoder or decoder: ResNet blocks (each followed by attention at the attention
    resolutions) and the resampling to the next resolution."""

    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()

    def run_block(self, i: int, h: torch.Tensor, emb: torch.Tensor, call) -> torch.Tensor:
        h = call(self.block[i], h, emb)
        return call(self.attn[i], h) if len(self.attn) else h


class SeedConditionalUNet(ModelMixin, ConfigMixin):
    """The seed repos' class-conditional DDPM UNet. Class id `num_classes` is the null class (the learned
    `null_classes_emb`), so classifier-free guidance works through class ids like our other families."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, sample_size: int = 32, in_channels: int = 3, out_channels: int = 3, ch: int = 128,
                 ch_mult: tuple[int, ...] = (1, 2, 2, 2), num_res_blocks: int = 2,
                 attn_resolutions: tuple[int, ...] = (16,), dropout: float = 0.1, resamp_with_conv: bool = True,
                 num_classes: int = 10, class_embed_dim: int = 512, norm_num_groups: int = 32,
                 norm_eps: float = 1e-6, guidance_form: str = "1+w"):
        super().__init__()
        if guidance_form not in GUIDANCE_FORMS:
            raise ValueError(f"guidance_form must be one of {sorted(GUIDANCE_FORMS)}, got {guidance_form!r}")
        temb_ch = 4 * ch
        groups, eps = norm_num_groups, norm_eps
        emb_ch = temb_ch + class_embed_dim
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])
        self.classes_emb = nn.Embedding(num_classes, ch)
        self.null_classes_emb = nn.Parameter(torch.randn(ch))
        self.cemb = nn.Module()
        self.cemb.dense = nn.ModuleList([nn.Linear(ch, class_embed_dim), nn.Linear(class_embed_dim, class_embed_dim)])
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)

        widths = [ch * m for m in ch_mult]
        resolution, block_in, skips = sample_size, ch, [ch]
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            level = Level()
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(block_in, width, emb_ch, dropout, groups, eps))
                block_in = width
                if resolution in attn_resolutions:
                    level.attn.append(AttnBlock(width, groups, eps))
                skips.append(width)
            if i != len(widths) - 1:
                level.downsample = Downsample(width, resamp_with_conv)
                resolution //= 2
                skips.append(width)
            self.down.append(level)

        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, emb_ch, dropout, groups, eps)
        self.mid.attn_1 = AttnBlock(block_in, groups, eps)
        self.mid.block_2 = ResnetBlock(block_in, block_in, emb_ch, dropout, groups, eps)

        up_levels = []
        for i in reversed(range(len(widths))):
            level = Level()
            for _ in range(num_res_blocks + 1):
                level.block.append(ResnetBlock(block_in + skips.pop(), widths[i], emb_ch, dropout, groups, eps))
                block_in = widths[i]
                if resolution in attn_resolutions:
                    level.attn.append(AttnBlock(block_in, groups, eps))
            if i != 0:
                level.upsample = Upsample(block_in, resamp_with_conv)
                resolution *= 2
            up_levels.insert(0, level)  # up[i] is the level at resolution i, as in the seed code
        self.up = nn.ModuleList(up_levels)
        self.norm_out = nn.GroupNorm(groups, block_in, eps=eps)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1)
        self.gradient_checkpointing = False  # set by enable_gradient_checkpointing (--gradient-checkpointing)

    @property
    def null_class(self) -> int:
        return int(self.config.num_classes)

    def embedding(self, timestep: torch.Tensor, class_labels: torch.Tensor, batch: int) -> torch.Tensor:
        """SiLU([time MLP(sinusoid(t)), class MLP(table[c] or the null vector)]): what every block projects."""
        config = self.config
        t = torch.as_tensor(timestep, device=self.conv_in.weight.device).reshape(-1).expand(batch)
        sinusoid = get_timestep_embedding(t.float(), config.ch, flip_sin_to_cos=False, downscale_freq_shift=1)
        temb = self.temb.dense[1](F.silu(self.temb.dense[0](sinusoid.to(self.dtype))))
        labels = torch.as_tensor(class_labels, device=t.device).reshape(-1).expand(batch).long()
        if bool(((labels < 0) | (labels > config.num_classes)).any()):
            raise ValueError(f"class labels must be in 0..{config.num_classes} ({config.num_classes} = null class)")
        null = labels == config.num_classes
        cemb = self.classes_emb(labels.clamp(max=config.num_classes - 1))
        cemb = torch.where(null[:, None], self.null_classes_emb.to(cemb.dtype).expand_as(cemb), cemb)
        cemb = self.cemb.dense[1](F.silu(self.cemb.dense[0](cemb)))
        return F.silu(torch.cat([temb, cemb], dim=-1))

    def call(self, module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        """Run a block, recomputing its activations in the backward pass when gradient checkpointing is on."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(module, *args)
        return module(*args)

    def forward(self, sample: torch.Tensor, timestep, class_labels, return_dict: bool = True):
        emb = self.embedding(timestep, class_labels, sample.shape[0])
        call = self.call
        hs = [self.conv_in(sample)]
        for level in self.down:
            for i in range(len(level.block)):
                hs.append(level.run_block(i, hs[-1], emb, call))
            if hasattr(level, "downsample"):
                hs.append(level.downsample(hs[-1]))
        h = call(self.mid.block_2, call(self.mid.attn_1, call(self.mid.block_1, hs[-1], emb)), emb)
        for level in reversed(self.up):
            for i in range(len(level.block)):
                h = level.run_block(i, torch.cat([h, hs.pop()], dim=1), emb, call)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return SeedUNetOutput(sample=out) if return_dict else (out,)


def build_unet(recipe: Recipe) -> SeedConditionalUNet:
    return SeedConditionalUNet(sample_size=recipe.resolution, in_channels=recipe.channels,
                               out_channels=recipe.channels, num_classes=recipe.num_classes, **recipe.architecture)


def load(recipe: Recipe, folder: Path | None) -> GeneratorBundle:
    """`folder=None` builds random weights from the recipe (--init random)."""
    if folder is None:
        return bundle_from_parts(recipe, build_unet(recipe), build_scheduler(recipe))
    unet = load_strict(SeedConditionalUNet, folder / "unet")
    if unet.config.num_classes != recipe.num_classes:
        raise UserError(f"{folder}/unet has {unet.config.num_classes} classes; {recipe.name} has {recipe.num_classes}")
    return bundle_from_parts(recipe, unet, load_scheduler(folder))


def bundle_from_parts(recipe: Recipe, unet: SeedConditionalUNet, scheduler) -> GeneratorBundle:
    pipeline = ClassConditionalPipeline(scheduler=scheduler, unet=unet)
    pipeline.set_progress_bar_config(disable=True)
    noise_scheduler = DDPMScheduler.from_config(scheduler.config)
    adapter = ClassLabelAdapter(recipe.num_classes, guidance_form=unet.config.guidance_form)
    return GeneratorBundle(recipe, pipeline, "unet", adapter, noise_scheduler)
