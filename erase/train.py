"""The single unlearning loop: accelerate for devices/precision/processes, progress, checkpoint and resume.

Every method and every task runs through `unlearn`. Batches and randomness of step k depend only on
(seed, k), so a run resumed from a checkpoint at step k ends with the same weights as one never stopped.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object, send_to_device, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from erase.data.sampling import full_pass_loader, step_loader
from erase.errors import Interrupted, UserError
from erase.progress import progress as progress_bar

CHECKPOINT_PREFIX = "step-"


@dataclass
class TrainSettings:
    steps: int
    lr: float
    batch_size: int
    seed: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_schedule: str = "constant"  # any diffusers.optimization schedule name: constant, cosine, linear...
    warmup_steps: int = 0
    ema_decay: float = 0.0  # > 0 keeps an EMA of the weights and returns it (pretraining recipes)
    checkpoint_every: int = 0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    progress: bool = True


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    prepare_seconds: float
    train_seconds: float
    resumed_from: int = 0
    processes: int = 1
    state_digest: str = ""  # sha256 of the method's state after set-up, checked equal on every process
    auto: dict[str, Any] | None = None  # `--steps auto`: the checks, the step stopped at and the one kept


@dataclass
class Progress:
    """Step counter and loss history, checkpointed with the rest of the state."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "history": json.dumps(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.history = json.loads(state["history"])


@contextmanager
def stop_requests():
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps."""
    flag = {"stop": False}

    def handler(signum, frame):
        flag["stop"] = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def make_optimizer(params, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    raise ValueError(f"unknown optimizer {settings.optimizer!r}")


def make_lr_schedule(optimizer, settings: TrainSettings):
    name = settings.lr_schedule
    if name == "constant" and settings.warmup_steps:
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=settings.warmup_steps,
                         num_training_steps=max(1, settings.steps))


def latest_checkpoint(folder: Path | None) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    done = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / "DONE").is_file()]
    return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int) -> Path:
    """accelerate save_state into step-K; the DONE marker makes a half-written checkpoint invisible."""
    target = folder / f"{CHECKPOINT_PREFIX}{step}"
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        (target / "DONE").write_text(str(step))
        for old in folder.glob(f"{CHECKPOINT_PREFIX}*"):  # keep only the newest
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


class StepHook:
    """Something that watches training steps without changing them (e.g. the amnesiac update logger).

    `before_step` sees the step's batches before the update, `after_step` the model after it, `finish` the
    final model (after any EMA copy). The trainer passes the unwrapped model.
    """

    def before_step(self, model, step: int, forget_batch, retain_batch) -> None:
        pass

    def after_step(self, model, step: int) -> None:
        pass

    def finish(self, model) -> None:
        pass


def make_accelerator(mixed_precision: str = "no") -> Accelerator:
    """Without CUDA, say cpu=True: under `accelerate launch --multi_gpu`/torchrun that selects gloo (MULTI_CPU)."""
    state = AcceleratorState._shared_state
    if state.get("_mixed_precision", mixed_precision) != mixed_precision and state.get("num_processes", 1) == 1:
        # accelerate keeps one global state; a single process running several trainings (tests, bench,
        # classify's retrained reference) may ask for another precision each time
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())


def check_settings(model, training: dict) -> None:
    """Refuse training settings (a run config's `training`) the model cannot honour; commands call this
    before their run folder exists."""
    if training.get("gradient_checkpointing") and not getattr(model, "_supports_gradient_checkpointing", False):
        raise UserError(f"{type(model).__name__} does not support --gradient-checkpointing (diffusers models do): "
                        f"run without it")


def enable_gradient_checkpointing(model) -> None:
    """diffusers/transformers models trade compute for memory; other modules cannot."""
    check_settings(model, {"gradient_checkpointing": True})
    model.enable_gradient_checkpointing()


def state_digest(state: Any) -> str:
    """A hash of every tensor (and plain value) in a nested state dict."""
    digest = hashlib.sha256()

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                          if value.numel() else b"empty")
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                digest.update(str(key).encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        else:
            digest.update(repr(value).encode())

    visit(state)
    return digest.hexdigest()


def check_same_on_every_process(accelerator: Accelerator, method) -> str:
    """Masks and method state are computed on every process from the whole forget set; prove they agree."""
    digest = state_digest(method.state_dict())
    if accelerator.num_processes > 1:
        digests = gather_object([digest])
        if len(set(digests)) != 1:
            raise RuntimeError(f"method state differs between processes after set-up: {digests}")
    return digest


def mean_over_processes(accelerator: Accelerator, losses: dict[str, float]) -> dict[str, float]:
    keys = sorted(losses)
    values = torch.tensor([float(losses[k]) for k in keys], device=accelerator.device)
    return dict(zip(keys, accelerator.reduce(values, reduction="mean").tolist()))


def any_process(accelerator: Accelerator, flag: bool) -> bool:
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum").item() > 0)


def _batches(loader, device):
    for batch in loader:
        yield send_to_device(batch, device)


@dataclass
class PrepareData:
    """What a method may read once before unlearning (saliency masks, Fisher estimates, update logs)."""

    forget_set: Any
    retain_set: Any
    batch_size: int
    device: Any
    seed: int = 0

    def forget_batches(self):
        """Every forget sample once, in order, on the training device."""
        if self.forget_set is None or len(self.forget_set) == 0:
            return
        yield from _batches(full_pass_loader(self.forget_set, self.batch_size), self.device)

    def retain_batches(self, limit: int | None = None):
        """`limit` seeded random retain batches (all of them, shuffled, when None)."""
        if self.retain_set is None or len(self.retain_set) == 0:
            return
        count = limit if limit is not None else -(-len(self.retain_set) // self.batch_size)
        yield from _batches(step_loader(self.retain_set, self.batch_size, self.seed + 7, 0, count), self.device)


def unlearn(model, task, method, forget_set, retain_set, settings: TrainSettings,
            checkpoint_dir: Path | None = None, history_path: Path | None = None,
            accelerator: Accelerator | None = None, desc: str | None = None,
            hooks: tuple[StepHook, ...] = (), auto=None) -> TrainResult:
    """Run `method` for `settings.steps` steps; resume from `checkpoint_dir` when it holds a checkpoint.

    `auto` (erase.auto_steps.AutoStop): `settings.steps` is a budget; the check runs on the original model,
    every `auto.every` steps and at the end, the run stops at the first check that meets the target within
    the guard, and the model returned is the one the checks kept."""
    accelerator = accelerator or make_accelerator(settings.mixed_precision)
    set_seed(settings.seed)
    model.to(accelerator.device).train()

    if settings.gradient_checkpointing:
        enable_gradient_checkpointing(model)

    started = time.perf_counter()  # set-up time includes the check of the original model
    resume_from = latest_checkpoint(checkpoint_dir)
    if auto is not None:
        auto.reduce = auto.reduce or (lambda scores: mean_over_processes(accelerator, scores)
                                      if accelerator.num_processes > 1 else scores)
        if resume_from is None:  # the original model, before any set-up changes it (amnesiac)
            baseline = auto.run(model, 0)
            set_seed(settings.seed)  # set-up draws the same randomness as without the check
    data = PrepareData(forget_set, retain_set, settings.batch_size, accelerator.device, settings.seed)
    method.prepare(model, task, data, accelerator, settings.steps)
    prepare_seconds = time.perf_counter() - started
    state_digest = check_same_on_every_process(accelerator, method)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, settings)
    schedule = make_lr_schedule(optimizer, settings)
    model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    method.bind_optimizer_step(accelerator.unwrap_model(model))

    progress = Progress()
    accelerator.register_for_checkpointing(method, progress)
    ema = EMAModel(trainable, decay=settings.ema_decay) if settings.ema_decay > 0 else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    if auto is not None:
        accelerator.register_for_checkpointing(auto)
        if resume_from is None:
            progress.history.append({"step": 0, **check_columns(baseline)})
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
    start = progress.step
    if history_path is not None and accelerator.is_main_process:  # a resumed run rewrites what it kept
        history_path.write_text("".join(json.dumps(r) + "\n" for r in progress.history))

    def loader(dataset, used):
        if not used or dataset is None:
            return iter(lambda: None, 0)  # an endless stream of None
        return _batches(step_loader(dataset, settings.batch_size, settings.seed, start, settings.steps,
                                    accelerator.process_index, accelerator.num_processes),
                        accelerator.device)

    forget_batches = loader(forget_set, method.uses_forget)
    retain_batches = loader(retain_set, method.uses_retain)
    bar = progress_bar(range(start, settings.steps), initial=start, total=settings.steps,
                       desc=desc or f"unlearn {method.name}",
                       enabled=settings.progress and accelerator.is_local_main_process)
    train_started = time.perf_counter()
    with stop_requests() as stop:
        for step in bar:
            set_seed(settings.seed * 100_003 + step * accelerator.num_processes + accelerator.process_index)
            forget_batch, retain_batch = next(forget_batches), next(retain_batches)
            for hook in hooks:
                hook.before_step(accelerator.unwrap_model(model), step, forget_batch, retain_batch)
            losses = method.step(model, task, forget_batch, retain_batch, optimizer, step)
            if accelerator.num_processes > 1:  # log the mean over processes, and stop together
                losses = mean_over_processes(accelerator, losses)
                stop["stop"] = any_process(accelerator, stop["stop"])
            for hook in hooks:
                hook.after_step(accelerator.unwrap_model(model), step)
            schedule.step()
            if ema is not None:
                ema.step(trainable)
            record = {"step": step + 1, **{k: float(v) for k, v in losses.items()}}
            finished = False
            if auto is not None and auto.due(step + 1):
                check = auto.run(accelerator.unwrap_model(model), step + 1)
                record.update(check_columns(check))
                finished = check["stop"]
            progress.history.append(record)
            progress.step = step + 1
            bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)  # mininterval decides
            if history_path is not None and accelerator.is_main_process:
                with history_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            last = progress.step == settings.steps or finished
            periodic = settings.checkpoint_every and progress.step % settings.checkpoint_every == 0
            if checkpoint_dir is not None and (stop["stop"] or (periodic and not last)):
                written = save_checkpoint(accelerator, checkpoint_dir, progress.step)
                if stop["stop"]:
                    raise Interrupted(progress.step, written)
            elif stop["stop"] and not last:
                raise Interrupted(progress.step, None)
            if finished:
                break
    bar.close()
    if ema is not None:
        ema.copy_to(trainable)
    model = accelerator.unwrap_model(model)
    if auto is not None:
        auto.restore(model)
    model.eval()
    for hook in hooks:
        hook.finish(model)
    return TrainResult(progress.history, prepare_seconds, time.perf_counter() - train_started,
                       resumed_from=start, processes=accelerator.num_processes, state_digest=state_digest,
                       auto=None if auto is None else auto.report(progress.step))


def check_columns(check: dict[str, Any]) -> dict[str, Any]:
    """A check as history.jsonl columns (beside the step's losses)."""
    columns = {"check_ua": check["ua"], "check_retained": check["retained"], "check_met": check["met"]}
    if "confirmed" in check:  # the retained score over the check's and its confirmation's samples
        columns["check_confirmed"] = check["confirmed"]
    return columns
