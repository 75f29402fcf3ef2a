"""Layer-wise partial updates (Gogineni & Nadimi, arXiv 2403.07611): every step, each layer (parameter
tensor) updates only a fraction of its entries.

The paper's selection follows partial-update adaptive filtering; its partial amnesiac variant keeps the
largest-magnitude entries of each layer's update. We offer that rule, `partial_rule: magnitude` (the
entries with the largest |gradient| of this step, per tensor; the default), and `random` (a fresh seeded
random subset per tensor and step). See docs/methods.md for what could and could not be checked in the paper.
"""
from __future__ import annotations

import zlib

import torch

from erase.errors import UserError
from erase.methods.selection import Masks, Selection, register_selection

RULES = ("magnitude", "random")


def per_tensor_top(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """The top `fraction` entries of one tensor (at least one entry), as a bool mask."""
    flat = scores.flatten()
    keep = max(1, int(round(fraction * flat.numel())))
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.view_as(scores)


@register_selection("layer-fraction")
class LayerFraction(Selection):
    summary = "each step, the top `fraction` of every tensor by |gradient| (or random: partial_rule)"
    defaults = {"fraction": 0.5, "partial_rule": "magnitude"}

    def __init__(self, hyper):
        super().__init__(hyper)
        if not 0 < float(hyper["fraction"]) <= 1:
            raise UserError(f"fraction must be in (0, 1], got {hyper['fraction']}")
        if hyper["partial_rule"] not in RULES:
            raise UserError(f"partial_rule must be one of {', '.join(RULES)}, got {hyper['partial_rule']!r}")
        self.seed = 0

    def prepare(self, model, task, data, objective, accelerator) -> None:
        self.seed = int(data.seed)

    def step_masks(self, model, step: int) -> Masks:
        fraction = float(self.hyper["fraction"])
        masks = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if self.hyper["partial_rule"] == "random":
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 7919 + zlib.crc32(name.encode()))
                scores = torch.rand(p.shape, generator=generator).to(p.device)
            elif p.grad is None:
                continue
            else:
                scores = p.grad.detach().abs()
            masks[name] = per_tensor_top(scores, fraction)
        return masks

    def state_dict(self):
        return {"masks": None, "seed": self.seed}

    def load_state_dict(self, state) -> None:
        self.seed = int(state["seed"])
