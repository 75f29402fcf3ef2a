"""Parameter selection, the third axis of a method: which weights may move, as per-tensor masks.

A selection yields {parameter name: bool mask}. Tensors whose mask is all False are frozen outright; the
rest have their gradients masked and their masked-out entries restored after every optimizer step (SalUn's
fix: momentum and weight decay otherwise move "frozen" weights).

Selections declare their settings in `settings` (erase/settings.py). Like every method module this one is
light at import: torch is imported by the functions that compute masks, so settings are checked first.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from erase.errors import UserError
from erase.registry import Registry
from erase.settings import Float, Setting

if TYPE_CHECKING:
    import torch

Masks = dict[str, "torch.Tensor"]
SELECTIONS: Registry[type["Selection"]] = Registry("parameter selection")
register_selection = SELECTIONS.register
selection_names = SELECTIONS.names
selection_class = SELECTIONS.get


class Selection:
    """Base: everything trains. Subclasses fill `self.masks` in `prepare` (or per step)."""

    name = "all"
    summary = ""
    works_on = "every model"
    settings: tuple[Setting, ...] = ()  # set with --set KEY=VALUE, like the method's own

    def __init__(self, hyper: dict):
        self.hyper = hyper
        self.masks: Masks | None = None

    def validate(self, model) -> None:
        """Refuse, before any run folder exists, a model this selection cannot work on."""

    def prepare(self, model, task, data, objective: str | None, accelerator) -> None:
        """Compute masks once, before unlearning starts (data: erase.train.PrepareData)."""

    def step_masks(self, model, step: int) -> Masks | None:
        """Masks for this step, called after backward (so a per-step rule may read `.grad`); static
        selections return the ones from `prepare`."""
        return self.masks

    def state_dict(self) -> dict:
        return {"masks": self.masks}

    def load_state_dict(self, state: dict) -> None:
        self.masks = state["masks"]


@register_selection("all")
class AllParameters(Selection):
    summary = "every weight"


def accumulate_gradients(model, batches, loss_fn, accelerator, clip: float | None, square: bool,
                         mean: bool = False) -> Masks:
    """Sum (or mean) over batches of the gradient (or its square) of `loss_fn`; each batch's gradient
    clipped first."""
    import torch
    from torch.nn.utils import clip_grad_norm_

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for batch in batches:
        count += 1
        model.zero_grad(set_to_none=True)
        accelerator.backward(loss_fn(batch))
        if clip:
            clip_grad_norm_(list(params.values()), clip)
        for n, p in params.items():
            if p.grad is not None:
                g = p.grad.detach().float()
                total[n] += g * g if square else g
    model.zero_grad(set_to_none=True)
    if mean and count:
        total = {n: t / count for n, t in total.items()}
    return total


def top_fraction_masks(scores: Masks, fraction: float) -> Masks:
    """Keep the top `fraction` of all entries of all tensors by one global ranking (ties broken by order), and
    at least one entry (a tiny fraction of a small model would otherwise select nothing to train)."""
    import torch

    if not 0 < fraction <= 1:
        raise UserError(f"mask_ratio must be in (0, 1], got {fraction}")
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = max(1, int(round(fraction * flat.numel())))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if keep > 0:
        chosen[torch.topk(flat, keep, sorted=False).indices] = True
    masks, offset = {}, 0
    for name, s in scores.items():
        masks[name] = chosen[offset: offset + s.numel()].view_as(s)
        offset += s.numel()
    return masks


@register_selection("saliency")
class Saliency(Selection):
    """SalUn: |sum of forget-loss gradients|, top `mask_ratio` of all weights by one global ranking."""

    summary = "SalUn: top mask_ratio of |forget gradient|, one global ranking (set up once)"

    settings = (Float("mask_ratio", 0.5, "share of all weights the saliency mask frees", gt=0, le=1),
                Float("mask_clip", 1.0, "gradient-norm clipping of each forget batch it ranks by (0: none)", ge=0))

    def prepare(self, model, task, data, objective, accelerator) -> None:
        grads = accumulate_gradients(
            model, data.forget_batches(), lambda b: task.saliency_loss(model, b), accelerator,
            clip=self.hyper["mask_clip"], square=False,
        )
        self.masks = top_fraction_masks({n: g.abs() for n, g in grads.items()}, self.hyper["mask_ratio"])


class MaskedOptimizerStep:
    """Apply masks to gradients, clip, step, and put masked-out weights back where they were."""

    def __init__(self, model, masks: Masks | None):
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.masks = masks
        self.originals: dict[str, torch.Tensor] = {}
        self.set_masks(masks)

    def set_masks(self, masks: Masks | None) -> None:
        self.masks = masks
        self.originals = {}
        if masks:
            for name, mask in masks.items():
                if name in self.params and not bool(mask.all()):
                    self.originals[name] = self.params[name].detach().clone()

    def __call__(self, optimizer, clip: float | None) -> None:
        import torch
        from torch.nn.utils import clip_grad_norm_

        if self.masks:
            for name, p in self.params.items():
                if p.grad is not None and name in self.masks:
                    p.grad.mul_(self.masks[name].to(p.grad.dtype))
        if clip:
            clip_grad_norm_(list(self.params.values()), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, original in self.originals.items():
                p = self.params[name]
                p.copy_(torch.where(self.masks[name].to(p.device), p, original))
