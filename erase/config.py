"""Model recipes (pipelines/<name>.yaml) and the typed, fully resolved run config."""
from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from erase.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where recipes and the small embedded models live; overridable for installed copies.
PIPELINES_DIR = Path(os.environ.get("ERASE_PIPELINES", REPO_ROOT / "pipelines"))
PROMPTS_DIR = Path(os.environ.get("ERASE_PROMPTS", REPO_ROOT / "prompts"))
# Where recipes' `$ERASE_MODELS/...` weights live when the variable is unset.
DEFAULT_MODELS_DIR = "~/.cache/erase/models"
# A saved model folder carries its recipe here, so `--model runs/<run>/model` resolves like a name.
RECIPE_FILE = "erase_recipe.yaml"


@dataclass
class Recipe:
    """Everything erase knows about one `--model`: family, weights, classes and default settings."""

    name: str
    family: str
    world: str | None = None
    weights: str | None = None  # folder with the diffusers/save_pretrained layout
    weights_hint: str = ""  # how to obtain the weights when they are absent
    probe: str | None = None  # folder of the probe classifier that judges samples
    data: str | None = None  # local dataset folder, for models whose world is not embedded (classifiers)
    data_hint: str = ""  # how to obtain that dataset
    resolution: int = 16
    channels: int = 1
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    architecture: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    unlearn: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the file this recipe came from

    def resolve_path(self, value: str | None, base: Path | None = None) -> Path | None:
        """Expand ~ and $VARS; relative paths are taken from `base` (default: the recipe's own folder)."""
        if value is None:
            return None
        for var in ("$ERASE_MODELS", "${ERASE_MODELS}"):  # the documented default when the variable is unset
            value = value.replace(var, os.environ.get("ERASE_MODELS", DEFAULT_MODELS_DIR))
        path = Path(os.path.expanduser(os.path.expandvars(value)))
        if path.is_absolute():
            return path
        base = base or (Path(self.source).parent if self.source else PIPELINES_DIR)
        return (base / path).resolve()

    @property
    def weights_dir(self) -> Path | None:
        """Relative to the recipe: pipelines/ for named models, the model folder itself for saved runs."""
        return self.resolve_path(self.weights)

    @property
    def data_dir(self) -> Path | None:
        return self.resolve_path(self.data)

    @property
    def probe_dir(self) -> Path | None:
        """Probes are judges shared by a world, so relative probe paths always mean pipelines/."""
        return self.resolve_path(self.probe, PIPELINES_DIR)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data

    def class_index(self, value: str | int) -> int:
        """Accept a class id or a class name; anything else is a UserError naming the valid range."""
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            index = int(text)
            if 0 <= index < self.num_classes:
                return index
            raise UserError(
                f"class {index} is out of range for {self.name}: use 0..{self.num_classes - 1} "
                f"(see `python -m erase list`)"
            )
        lowered = [n.lower() for n in self.class_names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        near = difflib.get_close_matches(text.lower(), lowered, n=5, cutoff=0.6)
        hint = ("; did you mean " + ", ".join(f"{self.class_names[lowered.index(n)]!r} "
                                              f"({lowered.index(n)})" for n in near) + "?") if near else ""
        raise UserError(
            f"unknown class {text!r} for {self.name}: give a class id 0..{self.num_classes - 1} "
            f"or one of its class names{hint}"
        )


def recipe_names() -> list[str]:
    return sorted(p.stem for p in PIPELINES_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read recipe {path}: {exc}; fix or remove the file") from exc
    if not isinstance(data, dict):
        raise UserError(f"recipe {path} is not a mapping; fix or remove the file")
    return data


def recipe_from_dict(data: dict[str, Any], source: Path) -> Recipe:
    """A recipe from its mapping (a recipe file's content); `source` anchors its relative paths."""
    return _recipe_from_dict(data, source)


def _recipe_from_dict(data: dict[str, Any], source: Path) -> Recipe:
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"recipe {source} has unknown keys {unknown}; remove them")
    data = copy.deepcopy(data)
    if "class_names" in data:
        from erase.data.class_names import resolve_class_names

        data["class_names"] = resolve_class_names(data["class_names"], str(source))
    return Recipe(**data, source=str(source))


def load_recipe(name_or_path: str) -> Recipe:
    """Resolve `--model`: a recipe name in pipelines/, or a saved model folder holding its recipe."""
    if not name_or_path or not str(name_or_path).strip():
        raise UserError("--model is empty: give a model name (see `python -m erase list`) or a model folder")
    recipe_yaml = PIPELINES_DIR / f"{name_or_path}.yaml"
    if "/" not in name_or_path and recipe_yaml.is_file():
        return _recipe_from_dict(_read_yaml(recipe_yaml), recipe_yaml)
    folder = Path(name_or_path).expanduser()
    if folder.suffix in (".yaml", ".yml") and folder.is_file():  # a user's own recipe file
        return _recipe_from_dict(_read_yaml(folder), folder.resolve())
    if folder.is_dir():
        if (folder / RECIPE_FILE).is_file():
            return _recipe_from_dict(_read_yaml(folder / RECIPE_FILE), (folder / RECIPE_FILE).resolve())
        raise UserError(
            f"{folder} is not an erase model folder (no {RECIPE_FILE}); pass a model name with "
            f"--model and the folder with --weights"
        )
    raise UserError(
        f"unknown model {name_or_path!r}: use one of {', '.join(recipe_names())}, a model folder "
        f"written by erase (runs/<run>/model) or a recipe .yaml file"
    )


def save_recipe(recipe: Recipe, folder: Path, **changes: Any) -> None:
    """Write the recipe next to a saved model so the folder can be passed as `--model` again."""
    data = recipe.to_dict()
    data.update(changes)
    (folder / RECIPE_FILE).write_text(yaml.safe_dump(data, sort_keys=False))


@dataclass
class RunConfig:
    """The fully resolved settings of one run; written to config.yaml and re-runnable as-is."""

    command: str
    model: str
    method: str
    target: list[str]
    objective: str | None = None
    params: str | None = None
    steps: int = 100
    lr: float = 1e-4
    batch_size: int = 32
    seed: int = 0
    training: dict[str, Any] = field(default_factory=dict)  # optimizer, schedule, weight decay...
    hyper: dict[str, Any] = field(default_factory=dict)  # the method's settings (alpha, mask_ratio...)
    evaluate: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    init: str = "pretrained"
    out: str | None = None
    checkpoint_every: int = 0
    keep_checkpoints: bool = False
    mixed_precision: str = "no"
    extra: dict[str, Any] = field(default_factory=dict)
    # `--steps auto`: target_ua, max_retain_drop (percent, points) and epochs (a budget from the data size),
    # and `steps` is the budget; None: `steps` fixed (erase/auto_steps.py)
    auto: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_yaml(cls, path: Path) -> "RunConfig":
        data = _read_yaml(path)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"config {path} has unknown keys {unknown}; remove them")
        return cls(**data)


def check_positive(name: str, value: Any, kind: type = int) -> Any:
    """Steps, learning rates and batch sizes must be positive numbers: say so in one line."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a positive number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise UserError(f"{name} must be a positive number, got {value!r}")
    if kind is int:
        if not number.is_integer():
            raise UserError(f"{name} must be a whole number, got {value!r}")
        return int(number)
    return number
