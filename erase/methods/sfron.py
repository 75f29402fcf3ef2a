"""SFR-on (arXiv 2409.19732, K1nght/Unified-Unlearning-w-Remain-Geometry): alternating forget and retain
updates, which apply a first-order remain-geometry correction to the forget direction without a Hessian.

Each step: (1) forget update, loss = alpha_t * forget objective (default adaptive gradient ascent), masked
by the Fisher-ratio saliency, clipped to `forget_clip`; alpha_t decays from `forget_alpha` by a cosine over
the run; every `forget_freq`-th step only. (2) retain update, loss = remain_alpha * retain loss on all
weights, clipped to `clip`. Both through the run's one optimizer, as in the reference.
"""
from __future__ import annotations

import math

from erase.methods.base import Method
from erase.methods.registry import register
from erase.settings import Bool, Float, Int


def cosine_decay(alpha0: float, step: int, total: int) -> float:
    """alpha0 * (1 + cos(pi * step / total)) / 2: alpha0 at step 0, 0 at the end."""
    return alpha0 * (1 + math.cos(math.pi * step / max(1, total))) / 2


@register("sfron")
class SFRon(Method):
    summary = "alternating masked forget step (cosine-decayed alpha) and full retain step"
    objective = "adaptive-ga"
    params = "fisher-saliency"
    freeze_unselected = False  # the retain step trains every weight
    settings = (Float("forget_alpha", 10.0, "weight of the forget step (cosine-decayed over the run)", ge=0),
                Float("remain_alpha", 1.0, "weight of the retain step", ge=0),
                Float("forget_clip", 1.0, "gradient-norm clipping of the forget step (0: none)", ge=0),
                Int("forget_freq", 1, "a forget step every forget_freq-th step", ge=1),
                Bool("decay_alpha", True, "decay forget_alpha by a cosine over the run"))

    def forget_alpha(self, step: int) -> float:
        alpha = self.hyper["forget_alpha"]
        return cosine_decay(alpha, step, self.total_steps) if self.hyper["decay_alpha"] else alpha

    def step(self, model, task, forget_batch, retain_batch, optimizer, step):
        losses = {}
        if step % self.hyper["forget_freq"] == 0:
            alpha = self.forget_alpha(step)
            forget = self.forget_loss(task, model, forget_batch)
            self.update(alpha * forget, optimizer, step, clip=self.hyper["forget_clip"])
            losses.update(forget_loss=forget.item(), forget_alpha=alpha)
        retain = task.retain_loss(model, retain_batch)
        self.update(self.hyper["remain_alpha"] * retain, optimizer, step, masked=False)
        losses["retain_loss"] = retain.item()
        return losses
