"""Checkpoints made elsewhere, in: `erase import FILE --as KIND --out DIR` and `--weights FILE`.

One module per kind (ddpm_seed.py, sd.py, dit.py) turns a file in its original layout into a loaded
GeneratorBundle of one of our families; what they share is here:
- reading: safetensors, or a pickle through `torch.load(weights_only=True, map_location="cpu")` and nothing
  else. A pickle that needs more (argparse.Namespace, a Lightning callback...) is refused in one line.
- picking the weights out of a training checkpoint (the DDIM codebase's [model, optimizer, step, ema] list,
  DiT's {"model", "ema", ...}, Lightning's {"state_dict": ...}), EMA by default.
- naming missing, unexpected and mis-shaped keys (the first few), and the input tensors a converter did not use.
- writing: everything is converted and checked in memory first; then the folder is saved into a temporary
  sibling of --out, reloaded strictly, compared, and renamed into place. Nothing half-written remains.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

import erase
from erase.config import Recipe, load_recipe
from erase.errors import UserError
from erase.models import GeneratorBundle, family_module
from erase.models.io import SHOWN, state_dict_problems

# kind -> converter module; each has convert(request) -> Imported and DEFAULT_RECIPE
KINDS = {"ddpm-seed": "erase.models.convert.ddpm_seed", "sd": "erase.models.convert.sd",
         "dit": "erase.models.convert.dit"}
# recipe family -> the kind a single --weights FILE of it is (where that is unambiguous)
FAMILY_KINDS = {"ddpm-seed": "ddpm-seed", "sd": "sd", "dit": "dit"}
RECORD = "IMPORT.json"


@dataclass
class ImportRequest:
    file: Path
    kind: str
    config: Path | None = None  # the run's config (ddpm-seed: the seed YAML; sd: LDM yaml; dit: settings)
    base: Path | None = None  # sd: the model the file applies to; dit: where the VAE is
    recipe: Recipe | None = None  # the recipe written with the model (None: the kind's default)
    ema: bool = True


@dataclass
class Imported:
    bundle: GeneratorBundle
    record: dict[str, Any] = field(default_factory=dict)  # how the file was read, for IMPORT.json


# -- reading ------------------------------------------------------------------------------------------------
def read_checkpoint(path: Path) -> Any:
    """The file's content: a safetensors dict, or a pickle read with weights_only=True (never anything more)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise UserError(f"{path} is not a readable safetensors file ({first_line(exc)})") from exc
    try:
        import warnings

        with warnings.catch_warnings():  # "Detected pickle protocol 4": the error below says what matters
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for files that are not checkpoints
        message = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", message)
        if found:
            raise UserError(
                f"{path} holds a {found.group(1)} object: erase reads pickles with torch.load(weights_only=True) "
                f"only; if you trust the file, re-save its state dict alone (e.g. torch.save(ckpt['ema'], "
                f"'weights.pt')) or as safetensors") from None
        reason = re.search(r"WeightsUnpickler error: *\s*([^\n]+)", message)
        detail = (reason.group(1).strip() if reason
                  else f"{type(exc).__name__}: {first_line(exc) or 'empty or truncated'}")
        raise UserError(f"{path} is neither a PyTorch checkpoint that torch.load(weights_only=True) reads nor a "
                        f".safetensors file ({detail[:160]})") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def describe(value: Any) -> str:
    """A short description of what a file holds, for "unknown layout" errors."""
    if isinstance(value, (list, tuple)):
        kinds = ", ".join(type(v).__name__ for v in value[:6])
        return f"a {type(value).__name__} of {len(value)} items ({kinds}{', ...' if len(value) > 6 else ''})"
    if isinstance(value, dict):
        keys = list(value)
        shown = ", ".join(map(str, keys[:SHOWN]))
        return f"a dict with {len(keys)} keys ({shown}{', ...' if len(keys) > SHOWN else ''})"
    return f"a {type(value).__name__}"


def pick_weights(content: Any, ema: bool, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, which weights) from a state dict or a training checkpoint; EMA weights unless `ema` is
    False or there are none. Layouts: a state dict; the DDIM codebase's [model, optimizer, (epoch,) step,
    (ema)] list; {"model", "ema", ...} (DiT's training script); {"state_dict": ...} (Lightning)."""
    if isinstance(content, dict) and "state_dict" in content and not is_state_dict(content):
        return pick_weights(content["state_dict"], ema, path)
    if is_state_dict(content):
        return content, "the file's state dict (no EMA copy beside it)"
    if isinstance(content, (list, tuple)) and content and is_state_dict(content[0]):
        has_ema = len(content) > 1 and is_state_dict(content[-1])
        if has_ema and ema:
            return content[-1], "EMA weights (last entry of the checkpoint list)"
        return content[0], ("raw weights (--no-ema)" if has_ema else "raw weights (the checkpoint has no EMA "
                                                                   "entry)")
    if isinstance(content, dict) and (is_state_dict(content.get("ema")) or is_state_dict(content.get("model"))):
        if ema and is_state_dict(content.get("ema")):
            return content["ema"], 'EMA weights ("ema")'
        if is_state_dict(content.get("model")):
            return content["model"], 'raw weights ("model"' + (", --no-ema)" if "ema" in content else ")")
        raise UserError(f"{path} has EMA weights only; import it without --no-ema")
    raise UserError(f"{path} has an unknown layout: {describe(content)}; expected a state dict or a training "
                    f"checkpoint holding one")


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop a prefix every key carries (DataParallel's `module.`)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


# -- checking -----------------------------------------------------------------------------------------------
def check_keys(model: torch.nn.Module, state: dict[str, Any], what: str, hint: str = "") -> None:
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise UserError(f"{what} does not match {type(model).__name__}: {'; '.join(problems)}"
                        + (f"; {hint}" if hint else ""))


def unused_inputs(inputs: dict[str, torch.Tensor], outputs: dict[str, Any]) -> list[str]:
    """Input keys whose tensors no output uses (converters rename, split or reshape, which keep the storage):
    the extra keys of a file, which a converter would otherwise drop silently."""
    used = {t.untyped_storage().data_ptr() for t in outputs.values() if isinstance(t, torch.Tensor)}
    return sorted(k for k, t in inputs.items() if t.numel() and t.untyped_storage().data_ptr() not in used)


def load_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str, hint: str = ""):
    check_keys(model, state, what, hint)
    model.load_state_dict(state, strict=True)
    return model.eval()


# -- the kinds ----------------------------------------------------------------------------------------------
def kind_module(kind: str):
    if kind not in KINDS:
        raise UserError(f"unknown import kind {kind!r}: use one of {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind])


def convert(request: ImportRequest) -> Imported:
    """The file as a loaded, strictly checked bundle of one of our families (nothing written)."""
    return kind_module(request.kind).convert(request)


def load_single_file(recipe: Recipe, file: Path) -> GeneratorBundle:
    """`--weights FILE` for a model whose family has one importer: converted in memory on every load."""
    kind = FAMILY_KINDS.get(recipe.family)
    if kind is None:
        raise UserError(f"--weights {file} is a file; {recipe.name} ({recipe.family} family) loads a save_pretrained "
                        f"folder: pass that folder (single files are imported for {', '.join(FAMILY_KINDS)} "
                        f"models with `python -m erase import`)")
    return convert(ImportRequest(file=file, kind=kind, recipe=recipe)).bundle


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def with_changes(recipe: Recipe, **changes: Any) -> Recipe:
    return dataclasses.replace(recipe, **changes)


def default_recipe(request: ImportRequest, name: str, family: str) -> Recipe:
    """--recipe, else the kind's default recipe; it must be of the kind's family."""
    recipe = request.recipe if request.recipe is not None else load_recipe(name)
    if recipe.family != family:
        raise UserError(f"recipe {recipe.name} is a {recipe.family} model; --as {request.kind} needs a {family} "
                        f"recipe (e.g. {name})")
    return recipe


def read_config(path: Path, example: str) -> dict[str, Any]:
    """--config: a YAML mapping (`example` shows what one looks like)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read --config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"--config {path} is not a YAML mapping (e.g. {example})")
    return data


def read_weights(request: ImportRequest) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, which weights) of a single-model checkpoint, without DataParallel's `module.` prefix."""
    state, which = pick_weights(read_checkpoint(request.file), request.ema, request.file)
    return strip_prefix(state, "module."), which


# -- writing ------------------------------------------------------------------------------------------------
def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def import_checkpoint(request: ImportRequest, out: Path, overwrite: bool = False,
                      command: str = "") -> tuple[Imported, dict[str, Any]]:
    """Convert, then write `out` (save_pretrained layout + erase_recipe.yaml + IMPORT.json) through a temporary
    sibling that is reloaded strictly and compared before it is renamed into place."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"output folder {out} already exists: pass --overwrite to replace it or choose another --out")
    started = time.perf_counter()
    imported = convert(request)
    bundle = imported.bundle
    record = {"command": command, "source": str(request.file.resolve()), "bytes": request.file.stat().st_size,
              "sha256": sha256(request.file), "kind": request.kind, "recipe": bundle.recipe.name,
              **imported.record, "parameters": sum(p.numel() for p in bundle.denoiser.parameters()),
              "erase_version": erase.__version__}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.import.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        bundle.save(tmp)
        reloaded = family_module(bundle.recipe).load(load_recipe(str(tmp)), tmp)
        if not same_weights(reloaded.denoiser, bundle.denoiser):
            raise UserError(f"the saved model in {tmp} does not reload to the converted weights; nothing written")
        record["seconds"] = round(time.perf_counter() - started, 2)
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return imported, record
