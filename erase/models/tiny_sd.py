"""The tiny random Stable Diffusion stack of `concept --tiny --init random` (tests, timing), as a recipe overlay.

Light (no torch): `erase concept` applies it while it checks its arguments, before the heavy imports.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from erase.config import Recipe
from erase.errors import UserError

# diffusers' tests/pipelines/stable_diffusion get_dummy_components, with a 16x16 image (8x8 latents) and a
# two-layer text encoder: every SD code path (VAE, cross-attention, CFG) in well under a second per step.
TINY_ARCHITECTURE: dict[str, Any] = {
    "unet": {"block_out_channels": [8, 16], "layers_per_block": 1, "in_channels": 4, "out_channels": 4,
             "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "cross_attention_dim": 32,
             "attention_head_dim": 4, "norm_num_groups": 4},
    "vae": {"block_out_channels": [8, 16], "in_channels": 3, "out_channels": 3, "latent_channels": 4,
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 4},
    "text_encoder": {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                     "num_hidden_layers": 2, "layer_norm_eps": 1e-5},
    "max_length": 77,
}
TINY_OVERLAY: dict[str, Any] = {
    "architecture": TINY_ARCHITECTURE, "resolution": 16,
    "sampling": {"num_inference_steps": 2, "guidance_scale": 3.0, "eta": 0.0},
}


def apply_tiny(recipe: Recipe) -> Recipe:
    """The recipe with the tiny test stack (and its own `tiny` overrides, e.g. smaller evaluation)."""
    if recipe.family != "sd":
        raise UserError(f"--tiny applies to Stable Diffusion models; {recipe.name} is a {recipe.family} model")
    changes = {"methods": {}, **TINY_OVERLAY, **recipe.extra.get("tiny", {})}
    replaced = ("architecture", "methods")  # the real model's per-method steps make no sense on the tiny one
    merged = {k: ({**getattr(recipe, k), **v} if isinstance(v, dict) and k not in replaced else v)
              for k, v in changes.items()}
    return dataclasses.replace(recipe, **merged, name=f"{recipe.name}-tiny")
