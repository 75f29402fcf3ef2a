"""sd: Stable Diffusion single files, through diffusers' own conversion of the original (CompVis / LDM) names.

Layouts of FILE:
- a whole CompVis checkpoint (.ckpt or .safetensors; `model.diffusion_model.`, `first_stage_model.`,
  `cond_stage_model.transformer.`, often inside {"state_dict": ...}): UNet, VAE and CLIP text encoder come from
  the file (EMA UNet weights when the file has them, as `model_ema.*`);
- a UNet-only state dict in CompVis naming, as ESD and SalUn save them (`input_blocks.0.0.weight`, ..., with or
  without the `model.diffusion_model.` prefix);
- a UNet-only state dict in diffusers naming (ESD's released `diffusers-*-UNET.pt` files).

The architecture, tokenizer and scheduler always come from a local diffusers Stable Diffusion folder: --base
DIR, else the recipe's own folder (sd-v1-4: $ERASE_MODELS or the local Hugging Face cache); never the hub.
UNet-only files are applied onto that base, whose other components are copied. Every component is checked key
for key: missing, unexpected and mis-shaped tensors, and input tensors the conversion did not use.
"""
from __future__ import annotations

from pathlib import Path

from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                convert_ldm_vae_checkpoint)

from erase.config import RECIPE_FILE, Recipe, load_recipe
from erase.errors import UserError
from erase.models import weights_folder
from erase.models.convert import (Imported, ImportRequest, first_line, load_checked, pick_weights, read_checkpoint,
                                  unused_inputs)
from erase.models.io import named
from erase.models.sd import RECOMPUTED_BUFFERS, bundle_from_parts, load_components

DEFAULT_RECIPE = "sd-v1-4"
UNET, VAE, CLIP, OPEN_CLIP = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.", \
    "cond_stage_model.model."
EMA = "model_ema."
FROM_BASE = "the architecture is the --base UNet's"
# what a whole LatentDiffusion checkpoint holds besides the three models: its diffusion schedule (buffers)
# and the EMA bookkeeping; the text encoder's position ids are recomputed by transformers
NOT_WEIGHTS = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
               "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
               "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
               "posterior_mean_coef1", "posterior_mean_coef2", "logvar", "lvlb_weights", "model_ema.decay",
               "model_ema.num_updates", CLIP + "text_model.embeddings.position_ids"}


def file_layout(state: dict, file: Path) -> str:
    keys = list(state)
    if any(k.startswith(OPEN_CLIP) for k in keys):
        raise UserError(f"{file} is a Stable Diffusion 2.x checkpoint (OpenCLIP text encoder); erase imports 1.x "
                        f"files: convert it with diffusers' StableDiffusionPipeline.from_single_file + save_pretrained")
    if any(k.startswith(UNET) for k in keys):
        return "whole" if any(k.startswith((VAE, CLIP)) for k in keys) else "compvis-unet"
    if "input_blocks.0.0.weight" in state or "time_embed.0.weight" in state:
        return "compvis-unet"
    if "conv_in.weight" in state and any(k.startswith("down_blocks.") for k in keys):
        return "diffusers-unet"
    shown = ", ".join(keys[:3])
    raise UserError(f"{file} has an unknown layout for --as sd (keys {shown}, ...): expected a CompVis checkpoint "
                    f"(model.diffusion_model.*, first_stage_model.*, cond_stage_model.*) or a UNet state dict "
                    f"(input_blocks.*, or diffusers' down_blocks.*)")


def recipe_and_base(request: ImportRequest) -> tuple[Recipe, Path]:
    """The recipe to write and the local diffusers folder the file applies to."""
    if request.config is not None:
        raise UserError("--config is not used by --as sd: the architecture, tokenizer and scheduler come from "
                        "--base DIR (a diffusers Stable Diffusion folder)")
    recipe = request.recipe
    if recipe is None:
        recipe = load_recipe(str(request.base)) if request.base and (request.base / RECIPE_FILE).is_file() \
            else load_recipe(DEFAULT_RECIPE)
    if recipe.family != "sd":
        raise UserError(f"recipe {recipe.name} is a {recipe.family} model; --as sd needs a Stable Diffusion recipe")
    if request.base is not None:
        return recipe, request.base
    try:
        return recipe, weights_folder(recipe, None)
    except UserError as exc:
        raise UserError(f"{request.file} needs the Stable Diffusion model it belongs to (architecture, tokenizer, "
                        f"scheduler): pass --base DIR; {exc}") from None


def converted(convert_fn, what: str, file: Path, *args) -> dict:
    from diffusers.utils import logging

    logger = logging.get_logger("diffusers.loaders.single_file_utils")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its EMA notes speak of --extract_ema flags; the import record says which
    try:
        return convert_fn(*args)
    except (KeyError, IndexError, ValueError, AttributeError, RuntimeError) as exc:
        raise UserError(f"{file}: its {what} does not convert for the base architecture "
                        f"({type(exc).__name__}: {first_line(exc)})") from None
    finally:
        logger.setLevel(level)


def convert_unet(state: dict, unet: UNet2DConditionModel, file: Path, ema: bool) -> tuple[UNet2DConditionModel, dict]:
    """`unet`: the base's architecture (its weights are replaced)."""
    weights = converted(convert_ldm_unet_checkpoint, "UNet", file, state, dict(unet.config), ema)
    load_checked(unet, weights, f"the UNet in {file}", FROM_BASE)
    return unet, weights


def has_ema_copy(state: dict) -> bool:
    """LatentDiffusion's EMA UNet (`model_ema.*`), by diffusers' own rule: more than 100 such tensors."""
    return sum(k.startswith(EMA) for k in state) > 100


def convert_whole(state: dict, parts: dict, file: Path, ema: bool) -> tuple[dict, dict]:
    """UNet (EMA copy if `ema`), VAE and text encoder from a whole CompVis checkpoint; (parts, converted)."""
    unet, unet_weights = convert_unet(state, parts["unet"], file, ema)
    if parts["vae"] is None:
        raise UserError(f"{file} holds a VAE but the base model has none (no vae/ folder): pass a --base with one")
    vae_weights = converted(convert_ldm_vae_checkpoint, "VAE", file, state, dict(parts["vae"].config))
    vae = load_checked(parts["vae"], vae_weights, f"the VAE in {file}")
    text_weights = convert_ldm_clip_checkpoint(state)
    text_encoder = parts["text_encoder"]
    loadable = {k: v for k, v in text_weights.items() if k not in RECOMPUTED_BUFFERS
                or k in text_encoder.state_dict()}
    load_checked(text_encoder, loadable, f"the text encoder in {file}")
    return ({**parts, "unet": unet, "vae": vae, "text_encoder": text_encoder.eval()},
            {**unet_weights, **vae_weights, **text_weights})


def check_all_used(state: dict, outputs: dict, file: Path, ema: bool) -> None:
    """Keys the conversion left unused are extra keys, except the schedule buffers and the unused UNet copy."""
    skip = UNET if ema else EMA
    inputs = {k: v for k, v in state.items() if k not in NOT_WEIGHTS and not k.startswith(skip)}
    unused = unused_inputs(inputs, outputs)
    if unused:
        raise UserError(f"{file} has {len(unused)} unexpected keys that are no part of Stable Diffusion's UNet, "
                        f"VAE or text encoder ({named(unused)})")


def convert(request: ImportRequest) -> Imported:
    recipe, base = recipe_and_base(request)
    state, which = pick_weights(read_checkpoint(request.file), True, request.file)  # EMA: model_ema.* below
    layout = file_layout(state, request.file)
    replaced = {"whole": {"unet", "vae", "text_encoder"}}.get(layout, {"unet"})
    parts = load_components(base, config_only=frozenset(replaced))  # the rest strictly, safetensors only
    if layout == "whole":
        ema = request.ema and has_ema_copy(state)
        parts, outputs = convert_whole(state, parts, request.file, ema)
        check_all_used(state, outputs, request.file, ema)
        which = "EMA UNet weights (model_ema)" if ema else (
            "raw UNet weights (--no-ema)" if has_ema_copy(state) else "the file's weights (no EMA copy)")
        described = "whole CompVis checkpoint (UNet, VAE, text encoder)"
    elif layout == "compvis-unet":
        prefixed = {k if k.startswith(UNET) else UNET + k: v for k, v in state.items()}
        unet, outputs = convert_unet(prefixed, parts["unet"], request.file, False)
        check_all_used(prefixed, outputs, request.file, False)
        parts = {**parts, "unet": unet}
        described = f"UNet-only state dict in CompVis names, on {base}"
    else:
        unet = load_checked(parts["unet"], state, f"the UNet in {request.file}", FROM_BASE)
        parts = {**parts, "unet": unet}
        described = f"UNet-only state dict in diffusers names, on {base}"
    return Imported(bundle_from_parts(recipe, parts), {"weights": which, "layout": described, "base": str(base)})
