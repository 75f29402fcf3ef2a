"""Forget-Me-Not (Zhang et al. 2023, SHI-Labs/Forget-Me-Not), attention re-steering: on forget images, minimise
the cross-attention that the image queries pay to the concept's tokens, so the concept's words stop steering
the picture. The loss is the L2 norm of those attention probabilities over every cross-attention layer and
head (the reference's `AttnController.loss`), at a random timestep; forget data only, cross-attention weights.

The concept's tokens in a forget prompt: its words that its anchor prompt lacks ("a red triangle on ..." vs
"a red square on ...": the triangle; "a photo of a nude person" vs "a photo of a person wearing clothes":
nude), or without anchors the words of the concept text. FMN reads attention maps, so it applies to models with cross-attention only.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from erase.errors import UserError
from erase.methods.base import Method
from erase.methods.registry import register

if TYPE_CHECKING:
    import torch


def concept_positions(batch, special: set[int]) -> torch.Tensor:
    """(batch, tokens) bool: the tokens of each forget prompt that carry the concept (see the module docstring)."""
    import torch

    ids = batch["input_ids"]
    rows = []
    for k in range(len(ids)):
        if "anchor_ids" in batch:  # the prompt's words that its anchor lacks
            chosen = set(ids[k].tolist()) - set(batch["anchor_ids"][k].tolist()) - special
        else:  # the words of the concept text
            chosen = set(batch["concept_ids"][k].tolist()) - special
        rows.append(torch.isin(ids[k], torch.tensor(sorted(chosen), dtype=ids.dtype, device=ids.device)))
    return torch.stack(rows)


def cross_attention_probabilities(module, hidden_states, context) -> torch.Tensor:
    """(batch, heads, queries, tokens): the softmax attention of a diffusers cross-attention layer."""
    if getattr(module, "norm_cross", None) is not None:
        context = module.norm_encoder_hidden_states(context)
    if hidden_states.dim() == 4:  # (batch, channels, h, w) inputs are flattened by the processors too
        hidden_states = hidden_states.flatten(2).transpose(1, 2)
    query, key = module.to_q(hidden_states), module.to_k(context)
    batch, heads = query.shape[0], module.heads
    query = query.view(batch, query.shape[1], heads, -1).transpose(1, 2)
    key = key.view(batch, key.shape[1], heads, -1).transpose(1, 2)
    return (query @ key.transpose(-1, -2) * module.scale).softmax(-1)


@contextmanager
def recorded_attention(model):
    """Collect the attention probabilities of every cross-attention layer (diffusers `attn2`) while inside."""
    maps: list[torch.Tensor] = []

    def record(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        if context is not None:
            maps.append(cross_attention_probabilities(module, hidden, context))

    handles = [module.register_forward_pre_hook(record, with_kwargs=True)
               for name, module in model.named_modules() if name.endswith("attn2")]
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


def attention_loss(model, task, batch, positions: torch.Tensor) -> torch.Tensor:
    """The norm of the attention paid to the concept's tokens, over every layer, head and image query."""
    import torch

    x_t, t, _ = task.noised(batch)
    with recorded_attention(model) as maps:
        task.adapter.predict(model, x_t, t, task.adapter.condition(batch))
    if not maps:
        raise UserError(f"fmn: {type(model).__name__} has no cross-attention layer (attn2) to re-steer")
    chosen = positions[:, None, None, :].to(maps[0].dtype)
    return torch.cat([(m * chosen).flatten() for m in maps]).norm()


@register("fmn")
class ForgetMeNot(Method):
    summary = "Forget-Me-Not: minimise the cross-attention paid to the concept's tokens on forget images"
    objective = None
    params = "cross-attn"
    uses_retain = False

    def __init__(self, objective=None, params=None, **hyper: Any):
        if objective is not None:
            raise UserError("fmn has its own loss (the concept tokens' attention maps): --objective does not apply")
        super().__init__(objective=None, params=params, **hyper)
        self._special: set[int] = set()

    def validate(self, model, forget_set, retain_set) -> None:
        super().validate(model, forget_set, retain_set)
        if not any(name.endswith("attn2") for name, _ in model.named_modules()):
            raise UserError(f"fmn re-steers cross-attention maps: {type(model).__name__} has no cross-attention "
                            f"(attn2); it applies to text-to-image models only")
        if getattr(forget_set, "concept_ids", None) is None and getattr(forget_set, "anchor_ids", None) is None:
            raise UserError("fmn needs the concept's words in the forget prompts: the forget data carry no concept "
                            "or anchor prompt (text-to-image concepts only)")

    def prepare(self, model, task, data, accelerator, total_steps: int) -> None:
        super().prepare(model, task, data, accelerator, total_steps)
        self._special = set(task.adapter.tokenizer.all_special_ids)
        found = any(bool(concept_positions(batch, self._special).any()) for batch in data.forget_batches())
        if not found:
            raise UserError("fmn: no forget prompt holds a token of the concept (every word is also in its anchor "
                            "prompt), so there is no attention to re-steer")

    def step(self, model, task, forget_batch, retain_batch, optimizer, step):
        loss = attention_loss(model, task, forget_batch, concept_positions(forget_batch, self._special))
        self.update(loss, optimizer, step)
        return {"attention_loss": loss.item()}
