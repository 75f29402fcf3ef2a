"""Robust unlearning (`--robust K`), after AdvUnlearn's bi-level idea, around any method.

Each unlearning step first runs K steps of the embedding attack against the current model: a free class
embedding for the forgotten classes, fitted by the model's own denoising loss on the step's forget batch (the
model's weights stay fixed while it is fitted). The method then takes its step on the forget data under the plain
conditioning and again under the attacked one (the forgotten classes' embedding replaced by the free one), so it
learns to erase the class wherever an attacker's embedding would reach it. The free embedding carries over
from step to step (warm start) and is checkpointed with the method, so a resumed run ends as an uninterrupted one.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from erase.errors import UserError
from erase.attacks.subjects import FreeClassEmbedding, class_table, free_rows


class RobustMethod:
    """A method whose every step is taken under the plain and under the attacked conditioning; everything else
    (settings, selection, report, checkpoint state) is the wrapped method's."""

    def __init__(self, method, inner_steps: int, lr: float, forget: list[int]):
        self.method = method
        self.inner_steps, self.lr, self.forget = inner_steps, lr, forget
        self.free: torch.nn.Parameter | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def __getattr__(self, name: str) -> Any:  # only called for what RobustMethod does not define
        return getattr(self.method, name)

    def validate(self, model, forget_set, retain_set) -> None:
        class_table(model, "--robust")
        self.method.validate(model, forget_set, retain_set)

    def prepare(self, model, task, data, accelerator, total_steps: int) -> None:
        self.method.prepare(model, task, data, accelerator, total_steps)
        self.free = free_rows(model, len(self.forget))
        self.optimizer = torch.optim.Adam([self.free], lr=self.lr)

    def run_report(self) -> dict[str, Any]:
        return {**self.method.run_report(), "robust": {"inner_steps": self.inner_steps, "inner_lr": self.lr}}

    @contextmanager
    def attacked(self, model):
        """The forgotten classes' embeddings replaced by the free one while the block runs."""
        table = model.class_embedding
        model.class_embedding = FreeClassEmbedding(table, self.forget, self.free)
        try:
            yield
        finally:
            model.class_embedding = table

    def inner_attack(self, model, task, forget_batch) -> float:
        """K steps of the embedding attack against the current weights (their gradients are not touched)."""
        loss = torch.zeros(())
        with self.attacked(model):
            for _ in range(self.inner_steps):
                x_t, t, noise = task.noised(forget_batch)
                prediction = task.adapter.predict(model, x_t, t, task.adapter.condition(forget_batch))
                loss = F.mse_loss(prediction.float(), noise.float())
                (grad,) = torch.autograd.grad(loss, [self.free])
                self.optimizer.zero_grad(set_to_none=True)
                self.free.grad = grad
                self.optimizer.step()
        return loss.detach().item()

    def step(self, model, task, forget_batch, retain_batch, optimizer, step: int) -> dict[str, float]:
        attack_loss = self.inner_attack(model, task, forget_batch)
        plain = self.method.step(model, task, forget_batch, retain_batch, optimizer, step)
        with self.attacked(model):
            attacked = self.method.step(model, task, forget_batch, retain_batch, optimizer, step)
        self.free.grad = None
        return {**plain, **{f"attacked_{k}": v for k, v in attacked.items()}, "attack_loss": attack_loss}

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method.state_dict(), "free": self.free.detach().clone(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method"])
        with torch.no_grad():
            self.free.copy_(state["free"])
        self.optimizer.load_state_dict(state["optimizer"])


def robust_method(method, inner_steps: int, forget: list[int]) -> RobustMethod:
    """`--robust K`: the method wrapped, its inner attack at the embedding attack's learning rate."""
    from erase.attacks.embedding import settings

    if not method.uses_forget:
        raise UserError(f"--robust hardens a method's step on the forget data; {method.name} does not use forget "
                        f"data: choose e.g. salun, esd or relabel")
    lr = next(s.default for s in settings if s.name == "embedding_lr")
    return RobustMethod(method, inner_steps, lr, forget)
