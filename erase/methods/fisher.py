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
from erase.settings import Float, Int

EPSILON = 1e-15  # the reference's guard against 0/0 (weights no data touches)


def fisher_ratio_masks(forget_fisher: Masks, retain_fisher: Masks, gamma: float) -> Masks:
    """(F_forget + 1e-15) / (F_retain + 1e-15) >= gamma, per entry."""
    return {name: (f + EPSILON) / (retain_fisher[name] + EPSILON) >= gamma for name, f in forget_fisher.items()}


@register_selection("fisher-saliency")
class FisherSaliency(Selection):
    summary = "SFR-on: forget Fisher / retain Fisher >= gamma, per weight (set up once)"
    settings = (Float("gamma", 1.0, "a weight is selected when its forget/retain Fisher ratio is >= gamma", ge=0),
                Float("fisher_clip", 1.0, "gradient-norm clipping of each batch of the Fisher passes (0: none)",
                      ge=0),
                Int("fisher_retain_batches", None, "retain batches of the retain Fisher pass (none: all)", ge=1,
                    optional=True))

    def prepare(self, model, task, data, objective, accelerator) -> None:
        if data.retain_set is None or len(data.retain_set) == 0:
            raise UserError("params fisher-saliency needs retain data to compare with: use --params saliency")
        limit = self.hyper["fisher_retain_batches"]

        def fisher(batches) -> Masks:
            return accumulate_gradients(model, batches, lambda b: task.saliency_loss(model, b), accelerator,
                                        clip=self.hyper["fisher_clip"], square=True, mean=True)

        forget = fisher(data.forget_batches())
        retain = fisher(data.retain_batches(limit))
        self.masks = fisher_ratio_masks(forget, retain, self.hyper["gamma"])
