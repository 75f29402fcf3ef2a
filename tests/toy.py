"""Small models, tasks and data for unit tests of methods: hand-checkable, no files, a second or less."""
from __future__ import annotations

import os
import signal

import torch

from erase.tasks.base import Task
from erase.train import PrepareData, StepHook, TrainSettings, make_accelerator, unlearn


class InterruptAfter(StepHook):
    """Sends this process SIGINT after a given step, as a user pressing Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def after_step(self, model, step: int) -> None:
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


class RegressionTask(Task):
    """Per-sample squared error; relabel pulls forget outputs toward -y (a 'wrong label')."""

    name = "regression"
    objectives = ("ga", "relabel", "adaptive-ga")

    def training_loss(self, model, batch):
        return (model(batch["x"]) - batch["y"]).pow(2).mean(1)

    def relabel_loss(self, model, batch):
        return (model(batch["x"]) + batch["y"]).pow(2).mean(1)


def toy_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))


def toy_data(n: int, seed: int, shift: float = 0.0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g) + shift
    y = torch.stack([x.sum(1), x[:, 0] - x[:, 1]], 1)
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def prepare_data(forget, retain, batch_size: int = 4) -> PrepareData:
    return PrepareData(forget, retain, batch_size, torch.device("cpu"), seed=0)


def run(method, model, task, forget, retain, steps: int = 3, optimizer: str = "adam", lr: float = 0.05,
        batch_size: int = 4):
    settings = TrainSettings(steps=steps, lr=lr, batch_size=batch_size, optimizer=optimizer, momentum=0.0,
                             progress=False)
    return unlearn(model, task, method, forget, retain, settings, accelerator=make_accelerator())


def bind(method, model, task, forget, retain, lr: float = 0.05, optimizer_cls=torch.optim.SGD):
    """Set a method up by hand (prepare + optimizer) to call `step` directly."""
    method.prepare(model, task, prepare_data(forget, retain), make_accelerator(), total_steps=10)
    optimizer = optimizer_cls([p for p in model.parameters() if p.requires_grad], lr=lr)
    method.bind_optimizer_step(model)
    return optimizer


def as_batch(items) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
