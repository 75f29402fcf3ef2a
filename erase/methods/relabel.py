"""Relabel (SalUn's "RL"): forget samples trained toward another class, plus alpha times the retain loss."""
from erase.methods.base import Method
from erase.methods.registry import register
from erase.settings import Float


@register("relabel")
class Relabel(Method):
    summary = "forget objective + alpha * retain loss"
    objective = "relabel"
    settings = (Float("alpha", 1e-3, "weight of the retain loss", ge=0),)

    def step(self, model, task, forget_batch, retain_batch, optimizer, step):
        forget = self.forget_loss(task, model, forget_batch)
        retain = task.retain_loss(model, retain_batch)
        self.update(forget + self.hyper["alpha"] * retain, optimizer, step)
        return {"forget_loss": forget.item(), "retain_loss": retain.item()}
