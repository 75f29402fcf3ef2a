"""Robust unlearning (`--robust K`), after AdvUnlearn's bi-level idea, around any method.

Each unlearning step first runs K steps of the embedding attack against the current model, fitted by the model's
own denoising loss on the step's forget batch (the model's weights stay fixed while it is fitted): a free class
embedding for the forgotten classes (class-conditional models) or free tokens after each prompt's words
(text-to-image). The method then takes its step on the forget data under the plain conditioning and again under
the attacked one, so it learns to erase the target wherever an attacker's embedding would reach it. The free
embedding carries over from step to step (warm start) and is checkpointed with the method, so a resumed run ends
as an uninterrupted one.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from erase.attacks.subjects import FreeClassEmbedding, class_table, free_rows
from erase.errors import UserError


class ClassConditioning:
    """The attacked conditioning of a class-conditional UNet: the forgotten classes' embedding rows."""

    def __init__(self, forget: list[int]):
        self.forget = forget

    def check(self, model) -> None:
        class_table(model, "--robust")

    def start(self, model, task) -> torch.nn.Parameter:
        return free_rows(model, len(self.forget))

    @contextmanager
    def installed(self, model, task, free: torch.nn.Parameter):
        table = model.class_embedding
        model.class_embedding = FreeClassEmbedding(table, self.forget, free)
        try:
            yield
        finally:
            model.class_embedding = table

    def predict(self, model, task, batch, x_t, t) -> torch.Tensor:
        return task.adapter.predict(model, x_t, t, task.adapter.condition(batch))


class TokenConditioning:
    """The attacked conditioning of a text-to-image model: free tokens after each prompt's words."""

    def __init__(self, count: int):
        self.count = count

    def check(self, model) -> None:
        pass

    def start(self, model, task) -> torch.nn.Parameter:
        from erase.attacks.concepts import free_tokens

        return free_tokens(task.adapter, self.count)

    @contextmanager
    def installed(self, model, task, free: torch.nn.Parameter):
        from erase.attacks.concepts import FreeTokenEmbedding

        encoder = task.adapter.text_encoder
        table = encoder.get_input_embeddings()
        encoder.set_input_embeddings(FreeTokenEmbedding(table, free, task.adapter.tokenizer.eos_token_id))
        try:
            yield
        finally:
            encoder.set_input_embeddings(table)

    def predict(self, model, task, batch, x_t, t) -> torch.Tensor:
        encoder = task.adapter.text_encoder
        cond = encoder(batch["input_ids"].to(x_t.device))[0]  # with the gradient to the free tokens
        return task.adapter.predict(model, x_t, t, cond)


class RobustMethod:
    """A method whose every step is taken under the plain and under the attacked conditioning; everything else
    (settings, selection, report, checkpoint state) is the wrapped method's."""

    def __init__(self, method, inner_steps: int, lr: float, conditioning):
        self.method = method
        self.inner_steps, self.lr, self.conditioning = inner_steps, lr, conditioning
        self.free: torch.nn.Parameter | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.task = None

    def __getattr__(self, name: str) -> Any:  # only called for what RobustMethod does not define
        return getattr(self.method, name)

    def validate(self, model, forget_set, retain_set) -> None:
        self.conditioning.check(model)
        self.method.validate(model, forget_set, retain_set)

    def prepare(self, model, task, data, accelerator, total_steps: int) -> None:
        self.method.prepare(model, task, data, accelerator, total_steps)
        self.free = self.conditioning.start(model, task)
        self.optimizer = torch.optim.Adam([self.free], lr=self.lr)

    def run_report(self) -> dict[str, Any]:
        return {**self.method.run_report(), "robust": {"inner_steps": self.inner_steps, "inner_lr": self.lr}}

    def inner_attack(self, model, task, forget_batch) -> float:
        """K steps of the embedding attack against the current weights (their gradients are not touched)."""
        loss = torch.zeros(())
        with self.conditioning.installed(model, task, self.free):
            for _ in range(self.inner_steps):
                x_t, t, noise = task.noised(forget_batch)
                prediction = self.conditioning.predict(model, task, forget_batch, x_t, t)
                loss = F.mse_loss(prediction.float(), noise.float())
                (grad,) = torch.autograd.grad(loss, [self.free])
                self.optimizer.zero_grad(set_to_none=True)
                self.free.grad = grad
                self.optimizer.step()
        return loss.detach().item()

    def step(self, model, task, forget_batch, retain_batch, optimizer, step: int) -> dict[str, float]:
        attack_loss = self.inner_attack(model, task, forget_batch)
        plain = self.method.step(model, task, forget_batch, retain_batch, optimizer, step)
        with self.conditioning.installed(model, task, self.free):
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


def robust_method(method, inner_steps: int, forget: list[int] | None = None) -> RobustMethod:
    """`--robust K`: the method wrapped, its inner attack at the embedding attack's learning rate; `forget`: the
    forgotten classes of a class-conditional model, None for a text-to-image model (free tokens)."""
    from erase.attacks.embedding import settings

    if not method.uses_forget:
        raise UserError(f"--robust hardens a method's step on the forget data; {method.name} does not use forget "
                        f"data: choose e.g. salun, esd or relabel")
    declared = {s.name: s.default for s in settings}
    conditioning = ClassConditioning(forget) if forget is not None else \
        TokenConditioning(declared["embedding_tokens"])
    return RobustMethod(method, inner_steps, declared["embedding_lr"], conditioning)
