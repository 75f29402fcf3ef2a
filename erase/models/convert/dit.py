"""dit: the official DiT checkpoint (facebookresearch/DiT's DiT-XL-2-256x256.pt, or the "ema"/"model" entry of
its training checkpoints) -> diffusers' DiTTransformer2DModel in DiTPipeline's layout (transformer/, vae/,
scheduler/).

diffusers 0.42 has no single-file loader for DiT, so the key map is here, read off DiTTransformer2DModel's
state_dict: diffusers keeps a copy of the timestep MLP and the label table in every block's adaLN-Zero norm,
and splits the fused qkv projection. Shapes and key sets are checked both ways (official names before the
map, diffusers names after). The fixed sin-cos `pos_embed`, when the file has it, fixes the image size and
must equal the one diffusers computes. The attention head count is not in the weights: --config names it
(`model: DiT-XL/2` or `num_attention_heads`), else the official model sizes give it by width.

Latent DiTs need the VAE: --base DIR (a DiT pipeline folder with vae/, or an SD-VAE folder such as
sd-vae-ft-ema), else the recipe's weights folder's vae/.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel

from erase.config import Recipe
from erase.errors import UserError
from erase.models.convert import (Imported, ImportRequest, default_recipe, load_checked, read_config, read_weights,
                                  unused_inputs, with_changes)
from erase.models.ddpm import build_scheduler
from erase.models.dit import bundle_from_parts
from erase.models.io import load_strict, named

DEFAULT_RECIPE = "dit-imagenet"
# the official model sizes: name -> (depth, hidden size, heads)
OFFICIAL_SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
HEADS_BY_WIDTH = {hidden: heads for _, hidden, heads in OFFICIAL_SIZES.values()}
GLOBAL_KEYS = ["x_embedder.proj.weight", "x_embedder.proj.bias", "t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias",
               "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias", "y_embedder.embedding_table.weight",
               "final_layer.linear.weight", "final_layer.linear.bias", "final_layer.adaLN_modulation.1.weight",
               "final_layer.adaLN_modulation.1.bias"]
BLOCK_PARTS = ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "adaLN_modulation.1"]


def official_keys(depth: int) -> list[str]:
    return GLOBAL_KEYS + [f"blocks.{i}.{part}.{kind}" for i in range(depth) for part in BLOCK_PARTS
                          for kind in ("weight", "bias")]


def block_count(state: dict, file: Path) -> int:
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if "x_embedder.proj.weight" not in state or not blocks:
        shown = ", ".join(list(state)[:3])
        raise UserError(f"{file} has an unknown layout for --as dit (keys {shown}, ...): expected the official DiT "
                        f"state dict (x_embedder.*, t_embedder.*, y_embedder.*, blocks.N.*, final_layer.*)")
    return max(blocks) + 1


def official_to_diffusers(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Official names -> DiTTransformer2DModel's."""
    out = {"pos_embed.proj.weight": state["x_embedder.proj.weight"],
           "pos_embed.proj.bias": state["x_embedder.proj.bias"],
           "proj_out_1.weight": state["final_layer.adaLN_modulation.1.weight"],
           "proj_out_1.bias": state["final_layer.adaLN_modulation.1.bias"],
           "proj_out_2.weight": state["final_layer.linear.weight"], "proj_out_2.bias": state["final_layer.linear.bias"]}
    for i in range(depth):
        new, old = f"transformer_blocks.{i}", f"blocks.{i}"
        emb = f"{new}.norm1.emb"
        for kind in ("weight", "bias"):
            out[f"{emb}.timestep_embedder.linear_1.{kind}"] = state[f"t_embedder.mlp.0.{kind}"]
            out[f"{emb}.timestep_embedder.linear_2.{kind}"] = state[f"t_embedder.mlp.2.{kind}"]
            out[f"{new}.norm1.linear.{kind}"] = state[f"{old}.adaLN_modulation.1.{kind}"]
            q, k, v = state[f"{old}.attn.qkv.{kind}"].chunk(3, dim=0)
            out[f"{new}.attn1.to_q.{kind}"], out[f"{new}.attn1.to_k.{kind}"], out[f"{new}.attn1.to_v.{kind}"] = q, k, v
            out[f"{new}.attn1.to_out.0.{kind}"] = state[f"{old}.attn.proj.{kind}"]
            out[f"{new}.ff.net.0.proj.{kind}"] = state[f"{old}.mlp.fc1.{kind}"]
            out[f"{new}.ff.net.2.{kind}"] = state[f"{old}.mlp.fc2.{kind}"]
        out[f"{emb}.class_embedder.embedding_table.weight"] = state["y_embedder.embedding_table.weight"]
    return out


def read_settings(path: Path | None) -> dict[str, Any]:
    """--config: DiT's own names (model: DiT-XL/2, image_size) or DiTTransformer2DModel's."""
    if path is None:
        return {}
    return read_config(path, "model: DiT-XL/2, image_size: 256")


def official_size(name: str) -> tuple[int, int, int, int]:
    found = re.fullmatch(r"DiT-(S|B|L|XL)/(2|4|8)", str(name))
    if not found:
        raise UserError(f"--config model {name!r} is not an official DiT (DiT-S/B/L/XL with patch 2, 4 or 8)")
    return (*OFFICIAL_SIZES[found.group(1)], int(found.group(2)))


def latent_factor(recipe: Recipe) -> int:
    vae = recipe.architecture.get("vae")
    return 2 ** (len(vae["block_out_channels"]) - 1) if vae else 1


def transformer_settings(state: dict, depth: int, settings: dict, recipe: Recipe, file: Path) -> dict[str, Any]:
    """DiTTransformer2DModel kwargs from the weights' shapes, --config and the recipe."""
    proj = state["x_embedder.proj.weight"]
    hidden, in_channels, patch = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[2])
    out_channels = int(state["final_layer.linear.weight"].shape[0]) // (patch * patch)
    heads = settings.get("num_attention_heads", HEADS_BY_WIDTH.get(hidden))
    if "model" in settings:
        want = official_size(settings["model"])
        heads = want[2]
        if (want[0], want[1], want[3]) != (depth, hidden, patch):
            raise UserError(f"{file} has depth {depth}, width {hidden}, patch {patch}; --config says "
                            f"{settings['model']} (depth {want[0]}, width {want[1]}, patch {want[3]})")
    if heads is None or hidden % int(heads):
        raise UserError(f"{file} is {hidden} wide, not an official DiT size: name num_attention_heads in --config")
    factor = latent_factor(recipe)
    if "pos_embed" in state:  # (1, patches, hidden): the image size the model was trained at
        sample_size = math.isqrt(int(state["pos_embed"].shape[1])) * patch
    elif "sample_size" in settings or "image_size" in settings:
        sample_size = int(settings.get("sample_size", int(settings.get("image_size", 0)) // factor))
    else:
        sample_size = int(recipe.architecture.get("sample_size", recipe.resolution // factor))
    return {"num_attention_heads": int(heads), "attention_head_dim": hidden // int(heads), "num_layers": depth,
            "in_channels": in_channels, "out_channels": out_channels, "sample_size": sample_size,
            "patch_size": patch, "activation_fn": "gelu-approximate", "norm_type": "ada_norm_zero",
            "norm_elementwise_affine": False, "norm_eps": 1e-6,
            "num_embeds_ada_norm": int(state["y_embedder.embedding_table.weight"].shape[0]) - 1}


def check_recipe_agrees(recipe: Recipe, settings: dict, file: Path) -> None:
    factor, size = latent_factor(recipe), settings["sample_size"]
    checks = [("classes", settings["num_embeds_ada_norm"], recipe.num_classes),
              ("image size", size * factor, recipe.resolution)]
    if factor == 1:
        checks.append(("channels", settings["in_channels"], recipe.channels))
    for what, found, expected in checks:
        if found != expected:
            raise UserError(f"{file} is a DiT with {found} {what}; recipe {recipe.name} has {expected}: pass --recipe "
                            f"with a recipe for this model (or --config image_size for the image size)")


def check_pos_embed(state: dict, transformer: DiTTransformer2DModel, file: Path) -> None:
    if "pos_embed" not in state:
        return
    ours = transformer.pos_embed.pos_embed
    theirs = state["pos_embed"].reshape(ours.shape) if state["pos_embed"].numel() == ours.numel() else None
    if theirs is None or not torch.allclose(theirs.float(), ours.float(), atol=1e-4):
        raise UserError(f"{file}: its pos_embed is not the fixed sin-cos embedding of a "
                        f"{transformer.config.sample_size}-wide input; the file is not an official DiT or "
                        f"was trained at another size")


def find_vae(request: ImportRequest, recipe: Recipe, in_channels: int):
    """The VAE of a latent DiT: --base (a DiT pipeline folder or an SD-VAE folder), else the recipe's folder."""
    if not recipe.architecture.get("vae"):
        if request.base is not None:
            raise UserError(f"--base gives a VAE, but recipe {recipe.name} is a pixel-space DiT (no architecture.vae); "
                            f"pass --recipe with a latent recipe (e.g. dit-imagenet) or drop --base")
        return None
    if request.base is not None:
        candidates = [request.base / "vae", request.base]
    else:
        candidates = [recipe.weights_dir / "vae"] if recipe.weights_dir is not None else []
    for folder in candidates:
        if (folder / "config.json").is_file():
            vae = load_strict(AutoencoderKL, folder)
            if vae.config.latent_channels != in_channels:
                raise UserError(f"the VAE in {folder} has {vae.config.latent_channels} latent channels; the DiT "
                                f"in {request.file} takes {in_channels}")
            return vae
    looked = ", ".join(str(c) for c in candidates) or f"recipe {recipe.name} names no weights folder"
    raise UserError(f"{request.file} is a latent DiT and needs its VAE: pass --base DIR (a DiT pipeline folder with "
                    f"vae/, or an sd-vae-ft-ema/mse folder in safetensors); looked in {looked}")


def convert(request: ImportRequest) -> Imported:
    recipe = default_recipe(request, DEFAULT_RECIPE, "dit")
    state, which = read_weights(request)
    depth = block_count(state, request.file)
    expected, found = set(official_keys(depth)), set(state) - {"pos_embed"}
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        problems = ([f"{len(missing)} missing ({named(missing)})"] if missing else []) + (
            [f"{len(unexpected)} unexpected ({named(unexpected)})"] if unexpected else [])
        raise UserError(f"{request.file} is not a complete official DiT state dict: {'; '.join(problems)}")
    settings = transformer_settings(state, depth, read_settings(request.config), recipe, request.file)
    check_recipe_agrees(recipe, settings, request.file)
    vae = find_vae(request, recipe, settings["in_channels"])
    transformer = DiTTransformer2DModel(**settings)
    check_pos_embed(state, transformer, request.file)
    weights = official_to_diffusers(state, depth)
    unused = unused_inputs({k: v for k, v in state.items() if k != "pos_embed"}, weights)
    if unused:
        raise UserError(f"{request.file}: {len(unused)} tensors are not used by the conversion ({named(unused)})")
    load_checked(transformer, weights, f"{request.file} ({which})", "the shapes come from the file and --config")
    architecture = {k: v for k, v in settings.items() if k != "num_embeds_ada_norm"}
    if recipe.architecture.get("vae"):
        architecture["vae"] = recipe.architecture["vae"]
    recipe = with_changes(recipe, architecture=architecture)
    bundle = bundle_from_parts(recipe, transformer, vae, build_scheduler(recipe))
    return Imported(bundle, {"weights": which, "layout": f"official DiT state dict ({depth} blocks)"})
