"""UCE, Unified Concept Editing (Gandikota et al. 2024, rohitgandikota/unified-concept-editing): a closed-form
edit of every cross-attention key and value projection, no training loop.

Each projection W reads the text embeddings. UCE moves the outputs of the erased concept's embeddings onto
those of its anchor, keeps the outputs of the preserved concepts' embeddings, and stays near the old weights:

    min_W  sum_i |W x_i - W0 a_i|^2  +  lambda sum_j |W p_j - W0 p_j|^2  +  ridge |W - W0|^2

x_i are token embeddings of the forget prompts, a_i those of their anchor prompts at the aligned positions,
p_j every token embedding of the retain prompts. The minimum is W = W0 M R^-1 with
R = X'X + lambda P'P + ridge I and M = A'X + lambda P'P + ridge I. Every key/value projection reads the same
embeddings, so one solve serves them all. Only attn2.to_k and attn2.to_v weights change; it applies wherever
the model has cross-attention (every text-to-image model) and is refused elsewhere. `--steps N` then
fine-tunes the same weights on the retain data.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from erase.errors import UserError
from erase.methods.ft import FineTune
from erase.methods.registry import register
from erase.settings import Float

if TYPE_CHECKING:
    import torch


def prompt_lengths(ids: torch.Tensor, eos: int) -> torch.Tensor:
    """Tokens up to and including the first end-of-text token, per row (padding may be EOS too)."""
    is_eos = ids == eos
    return is_eos.int().argmax(1) + 1


def aligned_starts(forget: torch.Tensor, anchor: torch.Tensor, forget_length: int, anchor_length: int):
    """Where the aligned rows of a forget prompt and its anchor begin: the first token where they differ (for
    the shorter prompt, at most its last word), with the longer one shifted so that their end-of-text tokens
    meet. "nudity" -> "": nudity~BOS, EOS~EOS, padding~padding (UCE's alignment); "a red triangle on ..." ->
    "a red square on ...": from the shape's token on, position by position."""
    short = min(forget_length, anchor_length)
    differ = (forget[:short] != anchor[:short]).nonzero()
    start = min(int(differ[0]) if len(differ) else short, short - 2)
    shift = forget_length - anchor_length
    return start + max(0, shift), start + max(0, -shift)


def edit_rows(adapter, forget_set, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, A): aligned token embeddings of each distinct (forget prompt, anchor prompt) pair of the forget set."""
    import torch

    pairs = torch.unique(torch.cat([forget_set.input_ids, forget_set.anchor_ids], 1), dim=0).to(device)
    width = forget_set.input_ids.shape[1]
    forget_ids, anchor_ids = pairs[:, :width], pairs[:, width:]
    forget = adapter.condition({"input_ids": forget_ids})
    anchor = adapter.relabel_condition({"anchor_ids": anchor_ids})
    eos = adapter.tokenizer.eos_token_id
    rows, targets = [], []
    for k, (f_len, a_len) in enumerate(zip(prompt_lengths(forget_ids, eos).tolist(),
                                           prompt_lengths(anchor_ids, eos).tolist())):
        if torch.equal(forget_ids[k], anchor_ids[k]):
            continue
        f_start, a_start = aligned_starts(forget_ids[k], anchor_ids[k], f_len, a_len)
        count = width - max(f_start, a_start)
        rows.append(forget[k, f_start:f_start + count])
        targets.append(anchor[k, a_start:a_start + count])
    if not rows:
        raise UserError("uce: every forget prompt equals its anchor prompt, so there is nothing to map")
    return torch.cat(rows).double(), torch.cat(targets).double()


def preserved_rows(adapter, retain_set, device) -> torch.Tensor | None:
    """P: every token embedding of each distinct retain prompt (None without retain data)."""
    import torch

    if retain_set is None or len(retain_set) == 0:
        return None
    ids = torch.unique(retain_set.input_ids, dim=0).to(device)
    return adapter.condition({"input_ids": ids}).flatten(0, 1).double()


def edit_matrix(erase: torch.Tensor, anchor: torch.Tensor, keep: torch.Tensor | None, preserve_lambda: float,
                ridge: float) -> torch.Tensor:
    """K (d x d) with W = W0 K the minimiser above, for every W0 that reads these embeddings."""
    import torch

    dim = erase.shape[1]
    eye = torch.eye(dim, dtype=erase.dtype, device=erase.device)
    kept = preserve_lambda * keep.T @ keep if keep is not None else torch.zeros_like(eye)
    gram = erase.T @ erase + kept + ridge * eye
    moved = anchor.T @ erase + kept + ridge * eye
    # W R = W0 M  ->  W = W0 M R^-1, and R is symmetric: K = (R^-1 M')'
    return torch.linalg.solve(gram, moved.T).T


def output_residuals(weight: torch.Tensor, edited: torch.Tensor, erase, anchor, keep) -> dict[str, float]:
    """How far the edited projection's outputs are from its targets, relative to where they started."""
    old, new = weight.double(), edited.double()
    target = anchor @ old.T
    report = {"erase_gap": float((erase @ new.T - target).norm() / (erase @ old.T - target).norm().clamp_min(1e-12))}
    if keep is not None:
        report["preserve_change"] = float((keep @ new.T - keep @ old.T).norm() / (keep @ old.T).norm().clamp_min(1e-12))
    return report


@register("uce")
class UCE(FineTune):
    summary = ("closed-form edit of the cross-attention keys/values: concept -> anchor, retain prompts kept "
               "(no steps; --steps N fine-tunes them on retain)")
    params = "cross-attn-kv"
    needs_steps = False
    prepare_reads_images = False  # the edit reads token ids only: with no steps, no image is drawn
    run_defaults = {"steps": 0}
    settings = (
        Float("preserve_lambda", 1.0, "uce: weight of keeping the retain prompts' key/value outputs", ge=0),
        Float("ridge", 0.1, "uce: weight of staying near the old key/value weights (keeps the solve regular)", gt=0),
    )

    def __init__(self, objective=None, params=None, **hyper: Any):
        super().__init__(objective=objective, params=params, **hyper)
        self._report: dict[str, Any] = {}

    def validate(self, model, forget_set, retain_set) -> None:
        super().validate(model, forget_set, retain_set)
        if getattr(forget_set, "anchor_ids", None) is None:
            raise UserError("uce maps the concept's prompts onto their anchors: the forget data carry no anchor "
                            "prompt (text-to-image concepts only)")

    def prepare(self, model, task, data, accelerator, total_steps: int) -> None:
        import torch

        super().prepare(model, task, data, accelerator, total_steps)
        started = time.perf_counter()
        adapter = task.adapter
        with torch.no_grad():
            erase, anchor = edit_rows(adapter, data.forget_set, data.device)
            keep = preserved_rows(adapter, data.retain_set, data.device)
            edit = edit_matrix(erase, anchor, keep, self.hyper["preserve_lambda"], self.hyper["ridge"])
            residuals = []
            for name, weight in self.edited_weights(model):
                edited = weight.double() @ edit
                residuals.append(output_residuals(weight, edited, erase, anchor, keep))
                weight.copy_(edited.to(weight.dtype))
        seconds = time.perf_counter() - started
        self._report = {"edit_seconds": round(seconds, 3), "edited_tensors": len(residuals),
                        "erase_rows": len(erase), "preserve_rows": 0 if keep is None else len(keep)}
        for key in residuals[0]:
            self._report[f"{key}_mean"] = round(sum(r[key] for r in residuals) / len(residuals), 6)

    def edited_weights(self, model):
        """The key/value weight matrices of the selection (biases, where a model has them, stay)."""
        masks = self.selection.masks
        return [(n, p) for n, p in model.named_parameters() if n in masks and bool(masks[n].any()) and p.dim() == 2]

    def run_report(self) -> dict[str, Any]:
        return {**super().run_report(), **self._report}
