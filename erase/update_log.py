"""Amnesiac update logs: the parameter update of every training batch that held data that may be deleted.

Recording (Graves et al. 2021, "Amnesiac Machine Learning"): `UpdateLogger` is a trainer hook. Before a
step whose batch contains a logged sample it copies the trainable weights; after the step it stores
delta = new - old. Partial amnesiac unlearning (Gogineni & Nadimi, arXiv 2403.07611) prunes each update
layer-wise before storing it: per parameter tensor, only the `keep` fraction of entries largest in
magnitude survive (stored as int32 flat indices + float values), so storage drops to about 2 * keep of the
dense log. One logger writes one log per requested keep fraction from the same training run.

Layout: <root>/<sha256 of the final weights>/keep-<k>/ with UPDATE_LOG.json (the logged steps and the
logged sample ids in each) and one safetensors file per logged step. Keying by the final weights means a
log is found from the model alone, and can never be applied to weights it was not recorded for.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors.torch import load_file, save_file

from erase.errors import UserError
from erase.evaluate.cache import weights_digest
from erase.train import StepHook

INDEX = "UPDATE_LOG.json"


def log_root() -> Path:
    """Where logs live unless a path is given: <erase cache>/update-logs (the cache honours $ERASE_CACHE)."""
    from erase.evaluate import cache

    return cache.CACHE_DIR / "update-logs"


def keep_folder_name(keep: float) -> str:
    return f"keep-{keep:g}"


def check_keep(keep: Any) -> float:
    try:
        value = float(keep)
    except (TypeError, ValueError):
        raise UserError(f"keep must be a fraction in (0, 1], got {keep!r}") from None
    if not 0 < value <= 1:
        raise UserError(f"keep must be a fraction in (0, 1], got {keep!r}")
    return value


def prune_layerwise(delta: torch.Tensor, keep: float) -> dict[str, torch.Tensor] | torch.Tensor:
    """The update itself when keep == 1, else the top `keep` fraction of its entries by |value|."""
    if keep >= 1:
        return delta
    flat = delta.flatten()
    count = max(1, math.ceil(keep * flat.numel()))
    indices = torch.topk(flat.abs(), count, sorted=False).indices.sort().values
    return {"indices": indices.to(torch.int32), "values": flat[indices]}


def sample_ids(batch) -> torch.Tensor | None:
    if batch is None or "index" not in batch:
        return None
    return batch["index"].detach().cpu().long()


class UpdateLogger(StepHook):
    """Trainer hook recording the (pruned) update of each batch that contains one of `logged_ids`."""

    def __init__(self, logged_ids: torch.Tensor, keeps: Iterable[float], root: Path | None = None,
                 description: dict[str, Any] | None = None):
        self.logged = torch.as_tensor(logged_ids).long().unique()
        self.keeps = sorted({check_keep(k) for k in keeps}, reverse=True)
        self.root = Path(root) if root is not None else log_root()
        self.description = description or {}
        self.staging = self.root / f".staging-{id(self)}"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.steps: list[dict[str, Any]] = []
        self._before: dict[str, torch.Tensor] | None = None
        self._ids: list[int] = []
        self.folders: dict[float, Path] = {}

    def before_step(self, model, step, forget_batch, retain_batch) -> None:
        ids = [i for i in (sample_ids(forget_batch), sample_ids(retain_batch)) if i is not None]
        hit = torch.cat(ids)[torch.isin(torch.cat(ids), self.logged)] if ids else torch.empty(0)
        self._before = None
        if len(hit):
            self._ids = sorted(set(hit.tolist()))
            self._before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def after_step(self, model, step) -> None:
        if self._before is None:
            return
        params = dict(model.named_parameters())
        deltas = {n: (params[n].detach() - old).cpu() for n, old in self._before.items()}
        file = f"step-{step:07d}.safetensors"
        for keep in self.keeps:
            tensors = {}
            for name, delta in deltas.items():
                pruned = prune_layerwise(delta, keep)
                if isinstance(pruned, dict):
                    tensors[f"{name}.indices"] = pruned["indices"].contiguous()
                    tensors[f"{name}.values"] = pruned["values"].contiguous()
                else:
                    tensors[name] = pruned.contiguous()
            folder = self.staging / keep_folder_name(keep)
            folder.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(folder / file))
        self.steps.append({"step": step, "ids": self._ids, "file": file})
        self._before = None

    def finish(self, model) -> None:
        """Name the logs after the final weights and move them into place (replacing older ones)."""
        digest = weights_digest(model)
        shapes = {n: list(p.shape) for n, p in model.named_parameters() if p.requires_grad}
        dense_bytes = 4 * sum(math.prod(s) for s in shapes.values()) * len(self.steps)
        for keep in self.keeps:
            staged = self.staging / keep_folder_name(keep)
            staged.mkdir(parents=True, exist_ok=True)
            stored = sum(f.stat().st_size for f in staged.glob("step-*.safetensors"))
            record = {**self.description, "weights_sha256": digest, "keep": keep,
                      "logged_ids": self.logged.tolist(), "logged_steps": len(self.steps),
                      "storage_bytes": stored, "dense_float32_bytes": dense_bytes,
                      "parameters": shapes, "steps": self.steps}
            (staged / INDEX).write_text(json.dumps(record) + "\n")
            final = self.root / digest / keep_folder_name(keep)
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(final, ignore_errors=True)
            staged.rename(final)
            self.folders[keep] = final
        shutil.rmtree(self.staging, ignore_errors=True)


class UpdateLog:
    """A recorded log, checked against the weights it is applied to."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            self.record = json.loads((folder / INDEX).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"update log {folder} is damaged ({exc}); record it again with pretrain "
                            f"--log-updates") from None
        self.logged = torch.tensor(self.record["logged_ids"], dtype=torch.long)

    @classmethod
    def find(cls, model, keep: float, path: str | None = None) -> "UpdateLog":
        """The log with fraction `keep` recorded for exactly these weights (or the one at `path`)."""
        keep = check_keep(keep)
        digest = weights_digest(model)
        if path:
            folder = Path(path).expanduser()
            if (folder / keep_folder_name(keep) / INDEX).is_file():
                folder = folder / keep_folder_name(keep)
            if not (folder / INDEX).is_file():
                raise UserError(f"{folder} is not an update log (no {INDEX}); pass the folder pretrain printed")
        else:
            base = log_root() / digest
            folder = base / keep_folder_name(keep)
            if not (folder / INDEX).is_file():
                kept = sorted(p.name for p in base.glob("keep-*")) if base.is_dir() else []
                have = f"; logs present for these weights: {', '.join(kept)} (--set keep=...)" if kept else ""
                raise UserError(
                    f"no update log with keep={keep:g} for these weights in {log_root()}{have}; record one "
                    f"with `python -m erase pretrain MODEL --log-updates --log-classes C` (and/or "
                    f"--log-random F) --log-keep {keep:g}")
        log = cls(folder)
        if log.record.get("weights_sha256") != digest:
            raise UserError(f"update log {folder} was recorded for other weights; amnesiac unlearning needs the "
                            f"log of the exact model it unlearns")
        return log

    def missing(self, forget_ids: torch.Tensor) -> torch.Tensor:
        """Forget samples whose batches were never logged."""
        return forget_ids[~torch.isin(forget_ids, self.logged)]

    def batches_with(self, forget_ids: torch.Tensor) -> list[dict[str, Any]]:
        wanted = set(forget_ids.tolist())
        return [s for s in self.record["steps"] if wanted.intersection(s["ids"])]

    @torch.no_grad()
    def subtract(self, model, forget_ids: torch.Tensor) -> dict[str, Any]:
        """theta <- theta - sum of the stored updates of every batch that held a forget sample."""
        params = dict(model.named_parameters())
        chosen = self.batches_with(forget_ids)
        read = 0
        for entry in chosen:
            file = self.folder / entry["file"]
            try:
                tensors = load_file(str(file))
            except Exception as exc:  # safetensors raises several types for damaged files
                raise UserError(f"update log file {file} is unreadable ({exc}); record the log again") from None
            read += file.stat().st_size
            for name, p in params.items():
                if name in tensors:
                    p.sub_(tensors[name].to(p.device, p.dtype))
                elif f"{name}.indices" in tensors:
                    flat = p.view(-1)
                    flat.index_add_(0, tensors[f"{name}.indices"].to(p.device).long(),
                                    -tensors[f"{name}.values"].to(p.device, p.dtype))
        return {"update_log": str(self.folder), "keep": self.record["keep"],
                "logged_batches": self.record["logged_steps"], "subtracted_batches": len(chosen),
                "storage_bytes": self.record["storage_bytes"],
                "dense_float32_bytes": self.record["dense_float32_bytes"], "bytes_read": read}
