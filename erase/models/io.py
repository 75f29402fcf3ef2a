"""Strict, safetensors-only loading of save_pretrained folders, and atomic saving."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from erase.errors import UserError

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
INDEX_SUFFIX = ".safetensors.index.json"


def _weight_files(folder: Path) -> list[Path]:
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return [folder / name]
        index = folder / (name.removesuffix(".safetensors") + INDEX_SUFFIX)
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError) as exc:
                raise UserError(f"{index} is not a valid shard index ({exc}); restore it") from exc
            return [folder / shard for shard in shards]
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt*")) or any(folder.glob("*.ckpt")):
        raise UserError(
            f"{folder} holds pickle weights (.bin/.pt/.ckpt); erase loads safetensors only: convert them "
            f"with diffusers' save_pretrained(safe_serialization=True)"
        )
    raise UserError(f"no safetensors weights in {folder}: expected {WEIGHT_NAMES[0]} or {WEIGHT_NAMES[1]}")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a save_pretrained folder; a truncated or corrupt file is a UserError."""
    state: dict[str, torch.Tensor] = {}
    for file in _weight_files(folder):
        if not file.is_file():
            raise UserError(f"weight shard {file} is missing; restore the folder {folder}")
        try:
            state.update(load_file(str(file)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise UserError(
                f"{file} is corrupt or truncated ({str(exc).splitlines()[0]}); restore it or re-create it"
            ) from exc
    return state


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """Missing, unexpected or mis-shaped tensors are errors, never warnings (no strict=False)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if misshaped:
        key = misshaped[0]
        problems.append(
            f"{len(misshaped)} mis-shaped (e.g. {key}: {tuple(state[key].shape)} "
            f"!= {tuple(expected[key].shape)})"
        )
    if problems:
        raise UserError(
            f"weights in {where} do not match the model config: {'; '.join(problems)} tensors; "
            f"point --weights at a folder saved for this architecture"
        )


def load_config_json(folder: Path) -> dict[str, Any]:
    config = folder / "config.json"
    if not config.is_file():
        raise UserError(f"{folder} has no config.json; it is not a save_pretrained folder")
    try:
        return json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{config} is not valid JSON ({exc}); restore it") from exc


def load_strict(model_cls: Any, folder: Path, **config_overrides: Any) -> torch.nn.Module:
    """Build `model_cls` from the folder's config, then load its safetensors with strict=True."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"model folder {folder} does not exist")
    config = load_config_json(folder)
    config.update(config_overrides)
    try:
        model = model_cls.from_config(config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{folder}/config.json does not describe a {model_cls.__name__}: {exc}") from exc
    state = read_state_dict(folder)
    check_state_dict(model, state, folder)
    model.load_state_dict(state, strict=True)
    return model.eval()


def replace_folder(tmp: Path, final: Path) -> None:
    """Move a fully written temporary folder into place (the rename is the commit point)."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
