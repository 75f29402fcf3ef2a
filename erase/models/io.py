"""Strict, safetensors-only loading of save_pretrained folders, and atomic saving.

Light at import: `check_weight_files` reads only the safetensors headers (no torch), so a truncated or corrupt
file is refused before the heavy imports; torch comes in with the functions that load tensors.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erase.errors import UserError

if TYPE_CHECKING:
    import torch

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


def safetensors_problem(file: Path) -> str | None:
    """Why `file` is not a whole safetensors file (its header does not parse, or the tensors it lists do not
    end where the file does), or None. Reads the header only."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < length <= size - 8:
                return "the header is incomplete"
            header = json.loads(f.read(length))
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    except OSError as exc:
        return str(exc)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "the header is not valid safetensors JSON"
    if 8 + length + max(ends, default=0) != size:
        return f"the tensors it lists need {8 + length + max(ends, default=0)} bytes, the file has {size}"
    return None


def check_weight_files(path: Path) -> None:
    """A safetensors file, or every *.safetensors file under a folder, is whole (headers only: fast, no torch)."""
    path = Path(path)
    for file in [path] if path.is_file() else sorted(path.rglob("*.safetensors")):
        problem = safetensors_problem(file)
        if problem:
            raise UserError(f"{file} is corrupt or truncated ({problem}); restore it or re-create it")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a save_pretrained folder; a truncated or corrupt file is a UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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


SHOWN = 3  # keys named in an error


def named(keys: list[str]) -> str:
    """The first few keys, and how many more."""
    return ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def state_dict_problems(expected: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """Missing, unexpected and mis-shaped tensors of `state` against a model's state dict, the first few named."""
    missing = sorted(k for k in expected if state.get(k) is None)
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(k for k in expected if state.get(k) is not None
                       and tuple(state[k].shape) != tuple(expected[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({named(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({named(unexpected)})")
    if misshaped:
        shapes = "; ".join(f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
                           for k in misshaped[:SHOWN])
        problems.append(f"{len(misshaped)} mis-shaped ({shapes})")
    return problems


def check_state_dict(model, state: dict[str, Any], where: Path) -> None:
    """Missing, unexpected or mis-shaped tensors are errors, never warnings (no strict=False)."""
    problems = state_dict_problems(model.state_dict(), state)
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
