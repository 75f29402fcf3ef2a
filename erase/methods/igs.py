"""Gradient surgery for utility-preserving unlearning (EUPMU, arXiv 2510.22124): minimise the forget
objective while the retain loss may rise by at most epsilon.

`igs-explicit` solves the linearised problem exactly with two backward passes (unilateral surgery: the
retain gradient is added only as far as needed to stop the forget gradient from raising the retain loss):
    lam = max(0, (-<g_r, g_f> - eps) / (|g_r|^2 + 1e-8)),   g = g_f + lam * g_r
`igs` is the paper's implicit form: one backward on
    log(L_f - m_f) + max(w, 0) * log(L_r - m_r)
where the multiplier w plays the Lagrange multiplier and learns, by its own Adam, from the observed change
of the retain loss on the same batch (same noise and timesteps) across the step (`form: log`, the paper's
"eu"). `form: fast` is the reference's cheaper "eu_fast": no second forward; w learns from the previous
step's and this step's retain loss and the loss is the convex mix (w L_r + L_f) / (1 + w) (L_f alone while
w < 0), w starting at 1.

Sign convention: `epsilon` is the tolerated rise of log L_r per step, so w grows when the retain loss rose
by more than epsilon and decays otherwise. The reference code's update, as our method notes record it,
equals ours with epsilon negated (it asks the retain loss to fall by epsilon): a negative epsilon gives it.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from erase.methods.base import Method
from erase.methods.registry import register
from erase.settings import Choice, Float

if TYPE_CHECKING:
    import torch

LOG_GUARD = 1e-8


def log_objective(loss: torch.Tensor, floor: float) -> torch.Tensor:
    """log(L - floor) for a positive objective; -log(-L) for gradient-ascent style (negative) objectives,
    which decreases exactly when L does. The reference uses positive objectives only (relabel)."""
    import torch

    if loss.detach().item() < 0:
        return -torch.log(-loss + LOG_GUARD)  # the floors apply to positive objectives only
    return torch.log(loss - floor + LOG_GUARD)


def multiplier_gradient(retain_before: float, retain_after: float, epsilon: float, floor: float = 0.0) -> float:
    """d(objective)/dw for the multiplier: negative (w grows) when the step raised log L_r by more than
    epsilon, positive (w shrinks) otherwise."""
    rise = math.log(max(retain_after - floor, LOG_GUARD)) - math.log(max(retain_before - floor, LOG_GUARD))
    return -(rise - epsilon)


def rng_replay(device):
    """Capture the random state now; the returned function restores it, so a later forward pass draws the
    same timesteps, noise and dropout (the retain loss before and after a step must see the same ones)."""
    import torch

    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if torch.device(device).type == "cuda" else None

    def restore():
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)

    return restore


class RetainMultiplier:
    """The learned multiplier w >= 0 on the retain term, with its own Adam (weight decay pulls it to 0)."""

    def __init__(self, initial: float, lr: float, weight_decay: float):
        import torch

        self.w = torch.nn.Parameter(torch.tensor(float(initial)))
        self.optimizer = torch.optim.Adam([self.w], lr=lr, weight_decay=weight_decay)

    @property
    def value(self) -> float:
        return max(float(self.w.detach()), 0.0)

    def update(self, gradient: float) -> None:
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        self.w.grad = torch.tensor(float(gradient))
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.detach().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            self.w.copy_(state["w"])
        self.optimizer.load_state_dict(state["optimizer"])


FORMS = ("log", "fast")


@register("igs")
class ImplicitGradientSurgery(Method):
    summary = "one backward on log L_f + w log L_r; multiplier w learned from the retain loss's change"
    objective = "relabel"
    settings = (Choice("form", "log", "log: the paper's one-backward log objective; fast: the reference's convex mix "
                       "without a second forward", choices=FORMS),
                Float("epsilon", 0.01, "tolerated rise of log L_r per step (negative: ask it to fall)"),
                Float("multiplier_lr", 0.025, "learning rate of the multiplier's Adam", gt=0),
                Float("multiplier_decay", 0.01, "weight decay of the multiplier's Adam", ge=0),
                Float("multiplier_init", None, "starting multiplier (none: 0 for log, 1 for fast)", optional=True),
                Float("forget_floor", 0.0, "m_f in log(L_f - m_f)", ge=0),
                Float("retain_floor", 0.0, "m_r in log(L_r - m_r)", ge=0))

    def __init__(self, objective=None, params=None, **hyper: Any):
        super().__init__(objective=objective, params=params, **hyper)
        initial = self.hyper["multiplier_init"]
        if initial is None:
            initial = 1.0 if self.hyper["form"] == "fast" else 0.0
        self.multiplier = RetainMultiplier(initial, self.hyper["multiplier_lr"], self.hyper["multiplier_decay"])
        self.previous_retain: float | None = None  # form fast: the last step's retain loss

    def learn_multiplier(self, before: float, after: float) -> None:
        import torch

        gradient = multiplier_gradient(before, after, self.hyper["epsilon"], self.hyper["retain_floor"])
        if self.accelerator.num_processes > 1:  # one multiplier for all processes: average its gradient
            gradient = float(self.accelerator.reduce(torch.tensor([gradient], device=self.accelerator.device),
                                                     reduction="mean"))
        self.multiplier.update(gradient)

    def step(self, model, task, forget_batch, retain_batch, optimizer, step):
        import torch

        if self.hyper["form"] == "fast":
            return self.fast_step(model, task, forget_batch, retain_batch, optimizer, step)
        forget = self.forget_loss(task, model, forget_batch)
        replay = rng_replay(self.accelerator.device)
        retain = task.retain_loss(model, retain_batch)
        w = self.multiplier.value
        loss = (log_objective(forget, self.hyper["forget_floor"])
                + w * log_objective(retain, self.hyper["retain_floor"]))
        self.update(loss, optimizer, step)
        resume = rng_replay(self.accelerator.device)
        replay()
        with torch.no_grad():
            retain_after = task.retain_loss(model, retain_batch)
        resume()
        before, after = retain.item(), retain_after.item()
        self.learn_multiplier(before, after)
        return {"forget_loss": forget.item(), "retain_loss": before, "retain_loss_after": after, "multiplier": w}

    def fast_step(self, model, task, forget_batch, retain_batch, optimizer, step):
        forget = self.forget_loss(task, model, forget_batch)
        retain = task.retain_loss(model, retain_batch)
        if self.previous_retain is not None:
            self.learn_multiplier(self.previous_retain, retain.item())
        w = float(self.multiplier.w.detach())
        loss = forget if w < 0 else (w * retain + forget) / (1 + w)
        self.update(loss, optimizer, step)
        self.previous_retain = retain.item()
        return {"forget_loss": forget.item(), "retain_loss": retain.item(), "multiplier": w}

    def extra_state(self) -> dict[str, Any]:
        return {"multiplier": self.multiplier.state_dict(), "previous_retain": self.previous_retain}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.multiplier.load_state_dict(state["multiplier"])
        self.previous_retain = state.get("previous_retain")


def flat_dot(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum((a[n].float() * b[n].float()).sum() for n in a)


def surgery(forget_grads: dict[str, torch.Tensor], retain_grads: dict[str, torch.Tensor], epsilon: float
            ) -> tuple[dict[str, torch.Tensor], float]:
    """Unilateral projection: g_f + lam * g_r with the smallest lam >= 0 that gives <g_r, g> >= -epsilon."""
    import torch

    dot = flat_dot(retain_grads, forget_grads)
    norm2 = flat_dot(retain_grads, retain_grads)
    lam = float(torch.clamp((-dot - epsilon) / (norm2 + 1e-8), min=0.0))
    if lam == 0.0:
        return forget_grads, 0.0
    return {n: g + lam * retain_grads[n] for n, g in forget_grads.items()}, lam


@register("igs-explicit")
class ExplicitGradientSurgery(Method):
    summary = "two backwards; the forget gradient loses its component that would raise the retain loss"
    objective = "relabel"
    settings = (Float("surgery_eps", 0.0, "epsilon of <g_r, g> >= -epsilon: how far the step may raise the retain "
                      "loss (linearised)"),
                Float("alpha", 0.0, "weight of the retain gradient added after the surgery", ge=0))

    def gradients(self, model, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """The gradient of `loss`, masked by the selection's fixed masks (surgery sees the weights that move;
        a per-step selection such as layer-fraction applies afterwards, to the combined gradient)."""
        import torch

        model.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        masks = self.selection.masks or {}
        grads = {}
        for name, p in self.apply_update.params.items():
            g = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            grads[name] = g * masks[name].to(g.dtype) if name in masks else g
        return grads

    def step(self, model, task, forget_batch, retain_batch, optimizer, step):
        forget = self.forget_loss(task, model, forget_batch)
        forget_grads = self.gradients(model, forget)
        retain = task.retain_loss(model, retain_batch)
        retain_grads = self.gradients(model, retain)
        combined, lam = surgery(forget_grads, retain_grads, self.hyper["surgery_eps"])
        alpha = self.hyper["alpha"]
        for name, p in self.apply_update.params.items():
            p.grad = combined[name] + alpha * retain_grads[name] if alpha else combined[name]
        self.apply_gradients(optimizer, step)
        return {"forget_loss": forget.item(), "retain_loss": retain.item(), "surgery_lambda": lam}
