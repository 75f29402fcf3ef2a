"""Gradient ascent: minimise the forget objective alone (default: minus the training loss)."""
from erase.methods.base import Method
from erase.methods.registry import register


@register("ga")
class GradientAscent(Method):
    summary = "forget objective only"
    objective = "ga"
    uses_retain = False

    def step(self, model, task, forget_batch, retain_batch, optimizer, step):
        loss = self.forget_loss(task, model, forget_batch)
        self.update(loss, optimizer, step)
        return {"forget_loss": loss.item()}
