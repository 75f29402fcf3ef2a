"""Fine-tune: plain training on the retain data only (forgetting by catastrophic interference)."""
from erase.methods.base import Method
from erase.methods.registry import register


@register("ft")
class FineTune(Method):
    summary = "retain loss only"
    objective = None
    uses_forget = False

    def step(self, model, task, forget_batch, retain_batch, optimizer, step):
        loss = task.retain_loss(model, retain_batch)
        self.update(loss, optimizer, step)
        return {"retain_loss": loss.item()}
