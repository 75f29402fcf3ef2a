"""SFR-on's parameter selection (arXiv 2409.19732): weights that matter more to the forget data than to the
retain data, by the ratio of their diagonal Fisher information.

F = mean over batches of the squared (per-batch clipped) gradient of the task's saliency loss, the same
loss SalUn ranks weights with (for class-conditional DDPMs the guided prediction). The reference computes
both Fishers over the whole forget and retain sets; `fisher_retain_batches` caps the retain pass for large
data sets.
"""
from __future__ import annotations

from erase.errors import UserError
from erase.methods.selection import Masks, Selection, accumulate_gradients, register_selection

EPSILON = 1e-15  # the reference's guard against 0/0 (weights no data touches)


def fisher_ratio_masks(forget_fisher: Masks, retain_fisher: Masks, gamma: float) -> Masks:
    """(F_forget + 1e-15) / (F_retain + 1e-15) >= gamma, per entry."""
    return {name: (f + EPSILON) / (retain_fisher[name] + EPSILON) >= gamma for name, f in forget_fisher.items()}


@register_selection("fisher-saliency")
class FisherSaliency(Selection):
    defaults = {"gamma": 1.0, "fisher_clip": 1.0, "fisher_retain_batches": None}

    def prepare(self, model, task, data, objective, accelerator) -> None:
        if data.retain_set is None or len(data.retain_set) == 0:
            raise UserError("params fisher-saliency needs retain data to compare with: use --params saliency")
        limit = self.hyper["fisher_retain_batches"]

        def fisher(batches) -> Masks:
            return accumulate_gradients(model, batches, lambda b: task.saliency_loss(model, b), accelerator,
                                        clip=self.hyper["fisher_clip"], square=True, mean=True)

        forget = fisher(data.forget_batches())
        retain = fisher(data.retain_batches(int(limit) if limit else None))
        self.masks = fisher_ratio_masks(forget, retain, self.hyper["gamma"])
