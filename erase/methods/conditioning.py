"""ESD's parameter selections by parameter name: the layers that read the conditioning, and the rest.

With cross-attention (diffusers names it `attn2`: Stable Diffusion, text-to-image UNets) `cross-attn` is
every attn2 tensor (ESD-x) and `non-cross-attn` everything except attn2, the time embedding and the output
layers (ESD-u, as the original ESD code trains it).

Class-conditional UNets and DiTs have no cross-attention; the class reaches them through the class
embedding, which the UNet adds to the timestep embedding and every ResNet reads through its `time_emb_proj`,
and which a DiT turns into adaLN modulations (`norm1.linear` in each block, `proj_out_1` at the end). The seed
repos' UNet (ddpm-seed) has a class table and null vector (`classes_emb`, `null_classes_emb`), a class MLP
(`cemb`) and in every ResNet one projection of [time, class] (`temb_cemb_proj`); its time MLP is `temb`. Those
tensors play the role of cross-attention here: `cross-attn` = class embedding + the layers that read it,
`non-cross-attn` = everything else except the time embedding and the output layers.
"""
from __future__ import annotations

import re

from erase.errors import UserError
from erase.methods.selection import Masks, Selection, register_selection

CROSS_ATTENTION = re.compile(r"(^|\.)attn2\.")
CROSS_ATTENTION_KV = re.compile(r"(^|\.)attn2\.to_[kv]\.")
CLASS_CONDITIONING = re.compile(
    r"(^|\.)(class_embedding|class_embedder|time_emb_proj|norm1\.linear|proj_out_1"
    r"|classes_emb|null_classes_emb|cemb|temb_cemb_proj)(\.|$)")
TIME_EMBEDDING = re.compile(r"(^|\.)(time_embedding|time_embed|timestep_embedder|time_proj|temb)\.")
OUTPUT_LAYERS = re.compile(r"^(conv_out|conv_norm_out|out|norm_out|proj_out_2|proj_out)\.")


def conditioning_names(model) -> tuple[list[str], str]:
    """(names of the tensors that read the conditioning, which rule found them)."""
    names = [n for n, _ in model.named_parameters()]
    cross = [n for n in names if CROSS_ATTENTION.search(n)]
    if cross:
        return cross, "cross-attention (attn2)"
    return [n for n in names if CLASS_CONDITIONING.search(n)], "class-conditioning path"


def _whole_tensor_masks(model, chosen: set[str]) -> Masks:
    import torch

    return {n: torch.full_like(p, n in chosen, dtype=torch.bool) for n, p in model.named_parameters()}


class ByName(Selection):
    """Static whole-tensor masks from parameter names; refuses models without conditioning layers."""

    works_on = "models with cross-attention (attn2) or a class-conditioning path; not classifiers"

    def chosen(self, model) -> set[str]:
        raise NotImplementedError

    def validate(self, model) -> None:
        names, _ = conditioning_names(model)
        if not names:
            raise UserError(f"params {self.name}: {type(model).__name__} has no cross-attention (attn2) and no "
                            "class-conditioning layers; use --params all or saliency")
        if not self.chosen(model):
            raise UserError(f"params {self.name} selects no parameter of {type(model).__name__}")

    def prepare(self, model, task, data, objective, accelerator) -> None:
        self.validate(model)
        self.masks = _whole_tensor_masks(model, self.chosen(model))


@register_selection("cross-attn")
class CrossAttention(ByName):
    """ESD-x: only the layers that read the conditioning."""

    summary = "ESD-x: attn2, or class embedding + the layers that read it (time_emb_proj, adaLN)"

    def chosen(self, model) -> set[str]:
        return set(conditioning_names(model)[0])


@register_selection("non-cross-attn")
class NonCrossAttention(ByName):
    """ESD-u: everything except the conditioning layers, the time embedding and the output layers."""

    summary = "ESD-u: all but the conditioning layers, the time embedding and the output layers"

    def chosen(self, model) -> set[str]:
        excluded = set(conditioning_names(model)[0])
        return {n for n, _ in model.named_parameters()
                if n not in excluded and not TIME_EMBEDDING.search(n) and not OUTPUT_LAYERS.search(n)}


@register_selection("cross-attn-kv")
class CrossAttentionKeyValue(ByName):
    """The key and value projections of every cross-attention layer: what reads the text embeddings (Concept
    Ablation's `crossattn_kv`, the weights UCE edits)."""

    summary = "the key and value projections of every cross-attention layer (attn2.to_k, attn2.to_v)"
    works_on = "models with cross-attention (text-to-image); not class-conditional models or classifiers"

    def validate(self, model) -> None:
        if not self.chosen(model):
            raise UserError(f"params {self.name}: {type(model).__name__} has no cross-attention (attn2.to_k, "
                            f"attn2.to_v): it applies to text-to-image models only")

    def chosen(self, model) -> set[str]:
        return {n for n, _ in model.named_parameters() if CROSS_ATTENTION_KV.search(n)}
