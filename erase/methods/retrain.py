"""Retrain: the exact reference. Fresh (seeded) weights of the same architecture, trained on the retain data
with the model's pretrain recipe: steps, lr, optimizer, schedule and EMA come from the recipe's `pretrain`
section, so with nothing forgotten it reproduces `erase pretrain`.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from erase.methods.ft import FineTune
from erase.methods.registry import register

if TYPE_CHECKING:
    import torch


def reinitialise(model: torch.nn.Module, seed: int) -> None:
    """Replace every weight by a fresh initialisation drawn under `seed`, for any model family.

    diffusers/ConfigMixin models are rebuilt from their own config (the same constructor call as building
    them from a recipe, hence the same initial weights as pretraining with that seed); other modules
    fall back to each layer's reset_parameters.
    """
    import torch

    torch.manual_seed(seed)
    if hasattr(type(model), "from_config") and getattr(model, "config", None) is not None:
        fresh = type(model).from_config(model.config)
    else:
        fresh = copy.deepcopy(model)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    model.load_state_dict(fresh.state_dict())


@register("retrain")
class Retrain(FineTune):
    summary = "fresh weights trained on the retain data with the pretrain recipe (the reference)"
    settings_section = "pretrain"
    needs_training_data = True

    def prepare(self, model, task, data, accelerator, total_steps: int) -> None:
        reinitialise(model, data.seed)
        super().prepare(model, task, data, accelerator, total_steps)
