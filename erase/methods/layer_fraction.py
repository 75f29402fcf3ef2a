"""Layer-wise partial updates (Gogineni & Nadimi, arXiv 2403.07611): every step, each layer (parameter
tensor) updates only a fraction of its entries.

The paper's selection follows partial-update adaptive filtering; its partial amnesiac variant keeps the
largest-magnitude entries of each layer's update. We offer that rule, `partial_rule: magnitude` (the
entries with the largest |gradient| of this step, per tensor; the default), and `random` (a fresh seeded
random subset per tensor and step). See docs/methods.md for what could and could not be checked in the paper.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from erase.methods.selection import Masks, Selection, register_selection
from erase.settings import Choice, Float

if TYPE_CHECKING:
    import torch

RULES = ("magnitude", "random")


def per_tensor_top(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """The top `fraction` entries of one tensor (at least one entry), as a bool mask."""
    import torch

    flat = scores.flatten()
    keep = max(1, int(round(fraction * flat.numel())))
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.view_as(scores)


@register_selection("layer-fraction")
class LayerFraction(Selection):
    summary = "each step, the top `fraction` of every tensor by |gradient| (or random: partial_rule)"
    settings = (Float("fraction", 0.5, "share of each tensor's entries that a step updates", gt=0, le=1),
                Choice("partial_rule", "magnitude", "which entries: largest |gradient| of the step, or a seeded "
                       "random subset", choices=RULES))

    def __init__(self, hyper):
        super().__init__(hyper)
        self.seed = 0

    def prepare(self, model, task, data, objective, accelerator) -> None:
        self.seed = int(data.seed)

    def step_masks(self, model, step: int) -> Masks:
        import torch

        fraction = float(self.hyper["fraction"])
        masks = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if self.hyper["partial_rule"] == "random":
                seed = self.seed * 1_000_003 + step * 7919 + zlib.crc32(name.encode())
                generator = torch.Generator().manual_seed(seed)
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
