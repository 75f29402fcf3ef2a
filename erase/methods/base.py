"""The Method contract: combine task losses into parameter updates. Methods never look inside a model family.

A method is (objective x update rule x parameter selection). The class fixes the update rule in `step`
and declares defaults for the other two axes, which `--objective` and `--params` override.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from erase.errors import UserError
from erase.methods.selection import selection_class
from erase.settings import Choice, Float, Setting, by_name, check_values, defaults
from erase.tasks.base import OBJECTIVES

if TYPE_CHECKING:  # this module stays light (no torch) so that settings are checked before the heavy imports
    import torch

# what ESD trains, and what it steers from: the concept prompt alone from the empty prompt (the reference);
# each forget prompt from the same prompt without the concept; each forget prompt from its anchor prompt
ESD_PROMPTS = ("concept", "forget", "anchor")
# Settings every method understands: gradient clipping and the options of the objectives.
COMMON_SETTINGS: tuple[Setting, ...] = (
    Float("clip", 1.0, "gradient-norm clipping of every update (0: none)", ge=0),
    Float("esd_eta", 1.0, "objective esd: strength of the negative guidance it trains toward", ge=0),
    Choice("esd_prompts", "concept", "objective esd: the concept from the empty prompt; each forget prompt from "
           "itself without the concept; or from its anchor prompt", choices=ESD_PROMPTS),
    Float("adaptive_power", 0.5, "objective adaptive-ga: lambda of the 1 / loss^lambda sample weights", ge=0),
)


class Method:
    """Base class; subclasses set the class attributes and implement `step`."""

    name = "method"
    summary = ""
    objective: str | None = None  # default forget objective; None = the method does not use forget data
    params = "all"  # default parameter selection
    settings: tuple[Setting, ...] = ()  # this method's own (`--set KEY=VALUE`); subclasses add or replace
    uses_forget = True
    uses_retain = True
    settings_section = "unlearn"  # recipe section with this method's default steps/lr/optimizer ("pretrain": retrain)
    needs_steps = True  # False: prepare() does the unlearning and the steps are optional fine-tuning
    # False: prepare() reads only the prompts of a concept's data, so a run with no steps draws no images
    prepare_reads_images = True
    # core values (steps, lr...) of this method that win over the recipe's `unlearn` section (and lose to its
    # `methods.<name>` and the command line): a closed-form edit (uce) runs no steps unless asked
    run_defaults: dict[str, Any] = {}
    needs_training_data = False  # True: works on the model's own training data (logged updates, retraining)
    # what the forget images of a concept run show: the forget prompts, or their anchors (Concept Ablation
    # trains the concept prompt on images of the anchor); their token ids are the forget prompts' either way
    forget_images = "forget"
    # True: tensors the selection excludes entirely are frozen. Update rules that also take unmasked steps
    # (SFR-on's retain step) set False so every tensor stays in the optimizer.
    freeze_unselected = True

    def __init__(self, objective: str | None = None, params: str | None = None, **hyper: Any):
        if objective is not None and objective not in OBJECTIVES:
            raise UserError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        self.objective = objective or type(self).objective
        self.params = params or type(self).params
        selection_cls = selection_class(self.params)
        declared = self.declared_settings(selection_cls)
        given = check_values(declared, hyper, "method settings", f"method {self.name} with params {self.params}")
        self.hyper = {**defaults(declared), **given}
        self.selection = selection_cls(self.hyper)
        self.apply_update = None  # MaskedOptimizerStep, once the optimizer exists
        self.apply_unmasked = None
        self._stale_snapshot = False  # an unmasked step moved weights that the masked step must restore
        self.accelerator = None
        self.total_steps = 0

    @classmethod
    def own_settings(cls) -> dict[str, Setting]:
        """This method's declarations, inherited ones included (a subclass may replace one by name)."""
        return by_name(s for klass in reversed(cls.__mro__) for s in getattr(klass, "settings", ()))

    @classmethod
    def declared_settings(cls, selection_cls=None) -> dict[str, Setting]:
        """Every setting a run of this method takes: the common ones, its own and its parameter selection's."""
        selection_cls = selection_cls or selection_class(cls.params)
        return {**by_name(COMMON_SETTINGS), **cls.own_settings(), **by_name(selection_cls.settings)}

    @classmethod
    def hyper_defaults(cls, selection_cls=None) -> dict[str, Any]:
        """Defaults of this method (own, inherited, common) and of its parameter selection."""
        return copy.deepcopy(defaults(cls.declared_settings(selection_cls)))

    def validate(self, model, forget_set, retain_set) -> None:
        """Check, before any run folder exists, what this method needs beyond the model and the data.

        Subclasses that override it call super() so the parameter selection can refuse the model too."""
        self.selection.validate(model)

    def run_report(self) -> dict[str, Any]:
        """Facts about this run for EVAL.json: the share of weights a fixed selection frees (saliency,
        fisher-saliency, cross-attn...); subclasses add their own (e.g. the storage of an update log)."""
        masks = self.selection.masks
        if not masks:
            return {}
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        return {"selected_fraction": round(kept / max(1, total), 4)}

    # -- set-up, called once by the trainer -------------------------------------------------------------
    def prepare(self, model, task, data, accelerator, total_steps: int) -> None:
        """Compute the parameter selection (data: erase.train.PrepareData); freeze tensors it excludes."""
        self.accelerator = accelerator
        self.total_steps = total_steps
        if self.objective == "esd":
            task.set_reference(frozen_copy(model))
        self.selection.prepare(model, task, data, self.objective, accelerator)
        masks = self.selection.masks
        if masks and self.freeze_unselected and not any(bool(m.any()) for m in masks.values()):
            settings = ", ".join(f"{s.name}={self.hyper[s.name]}" for s in self.selection.settings)
            raise UserError(f"params {self.params} selected no weight of this model ({settings or 'no settings'}), "
                            f"so there is nothing to train: choose settings that select some weights")
        if masks and self.freeze_unselected:
            for name, p in model.named_parameters():
                if name in masks and not bool(masks[name].any()):
                    p.requires_grad_(False)

    def bind_optimizer_step(self, model) -> None:
        """Called after the optimizer exists: the masked step helper sees the final trainable tensors."""
        from erase.methods.selection import MaskedOptimizerStep

        self._model = model
        self.apply_update = MaskedOptimizerStep(model, self.selection.masks)
        self.apply_unmasked = MaskedOptimizerStep(model, None)

    # -- one unlearning step ----------------------------------------------------------------------------
    def step(self, model, task, forget_batch, retain_batch, optimizer, step: int) -> dict[str, float]:
        raise NotImplementedError

    def update(self, loss: torch.Tensor, optimizer, step: int, clip: float | None = None,
               masked: bool = True) -> None:
        """backward -> mask -> clip -> optimizer step -> restore masked-out weights."""
        self.accelerator.backward(loss)
        self.apply_gradients(optimizer, step, clip, masked)

    def apply_gradients(self, optimizer, step: int, clip: float | None = None, masked: bool = True) -> None:
        """Step on the gradients already in `.grad` (update rules that build the gradient themselves).

        masked=False: every trainable weight may move (SFR-on's retain step); the next masked step then
        re-reads the weights it must hold in place, instead of restoring the values from before."""
        clip = self.hyper["clip"] if clip is None else clip
        if not masked:
            self.apply_unmasked(optimizer, clip)
            self._stale_snapshot = True
            return
        masks = self.current_masks(step)
        if masks is not self.apply_update.masks or self._stale_snapshot:
            self.apply_update.set_masks(masks)
            self._stale_snapshot = False
        self.apply_update(optimizer, clip)

    def current_masks(self, step: int):
        """This step's masks (after backward: per-step selections may read the gradients)."""
        return self.selection.step_masks(self._model, step)

    def forget_loss(self, task, model, batch) -> torch.Tensor:
        return task.forget_loss(model, batch, self.objective, **self.hyper)

    # -- checkpointing (accelerate register_for_checkpointing) ------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"selection": self.selection.state_dict(), "method": self.extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.selection.load_state_dict(state["selection"])
        self.load_extra_state(state["method"])

    def extra_state(self) -> dict[str, Any]:
        """Method-specific state to checkpoint (multipliers, slow weights...)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "objective": self.objective, "params": self.params, **self.hyper}


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference
