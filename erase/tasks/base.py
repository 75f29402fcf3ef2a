"""The Task contract: how one model family turns a batch into losses. Methods only combine them."""
from __future__ import annotations

from typing import TYPE_CHECKING

from erase.errors import UserError

if TYPE_CHECKING:  # light at import: methods read OBJECTIVES before anything heavy is loaded
    import torch

# Forget objectives every task understands; a task may refuse one it cannot define (e.g. esd on a classifier).
OBJECTIVES = ("ga", "relabel", "esd", "adaptive-ga")


def adaptive_weights(per_sample_loss: torch.Tensor, power: float) -> torch.Tensor:
    """SFR-on's adaptive weights 1 / l_i^lambda, normalised to sum to the batch size (no gradient)."""
    loss = per_sample_loss.detach().clamp_min(1e-12)
    weights = loss.pow(-power)
    return weights * (len(weights) / weights.sum())


class Task:
    """Per-sample losses for one model family. Subclasses implement the first three methods."""

    name = "task"
    objectives: tuple[str, ...] = OBJECTIVES  # the forget objectives this task defines

    def training_loss(self, model, batch) -> torch.Tensor:
        """The family's ordinary training loss, one value per sample."""
        raise NotImplementedError

    def relabel_loss(self, model, batch) -> torch.Tensor:
        """Loss that pulls forget samples toward another class / an anchor prompt, per sample."""
        raise NotImplementedError

    def esd_loss(self, model, batch, eta: float, prompts: str = "concept") -> torch.Tensor:
        """ESD: match the frozen model's negatively guided prediction, per sample."""
        raise UserError(f"objective 'esd' is not defined for the {self.name} task; use ga or relabel")

    def check_objective(self, objective: str | None) -> None:
        """Refuse, before any work, an objective this task cannot compute."""
        if objective is not None and objective not in self.objectives:
            raise UserError(f"objective {objective!r} is not defined for the {self.name} task; "
                            f"use one of {', '.join(self.objectives)} (--objective)")

    def set_reference(self, model) -> None:
        """Objectives that compare with the original model (esd) get a frozen copy here."""
        self.reference = model

    def saliency_loss(self, model, batch) -> torch.Tensor:
        """The scalar loss whose gradient ranks weights for saliency masks (SalUn)."""
        return self.training_loss(model, batch).mean()

    def retain_loss(self, model, batch) -> torch.Tensor:
        return self.training_loss(model, batch).mean()

    def forget_loss(self, model, batch, objective: str, **options) -> torch.Tensor:
        """A scalar to minimise on forget data for the named objective."""
        if objective == "ga":
            return -self.training_loss(model, batch).mean()
        if objective == "adaptive-ga":
            losses = self.training_loss(model, batch)
            return -(adaptive_weights(losses, options.get("adaptive_power", 0.5)) * losses).mean()
        if objective == "relabel":
            return self.relabel_loss(model, batch).mean()
        if objective == "esd":
            return self.esd_loss(model, batch, eta=options.get("esd_eta", 1.0),
                                 prompts=options.get("esd_prompts", "concept")).mean()
        raise UserError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
