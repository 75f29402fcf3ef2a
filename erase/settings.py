"""Typed settings with a valid range, declared once next to the code that uses them.

A declaration reads a value from the command line (`--set KEY=VALUE`, always text) or from a recipe (YAML
values), and refuses a bad one in one line that names the setting, the value, what is allowed and where the
value came from. Methods and parameter selections declare theirs in `settings` (erase/methods); training and
evaluation settings are declared below. This module is light (no torch), so refusals are fast.

    ALPHA = Float("alpha", 1e-3, "weight of the retain loss", ge=0)
    check_values({"alpha": ALPHA}, {"alpha": "1e-3"}, "--set")   # -> {"alpha": 0.001}
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from erase.errors import UserError

NONE_WORDS = ("none", "null", "~")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class Refused(ValueError):
    """A value a declaration does not accept (check_values turns it into the one-line UserError)."""


@dataclass(frozen=True)
class Setting:
    """One named value with its default. Subclasses say which values are allowed."""

    name: str
    default: Any
    help: str = ""
    optional: bool = False  # None is allowed (`none` on the command line): the code then works it out itself

    def read(self, value: Any) -> Any:
        """The value as the code uses it (text parsed, numbers typed); Refused when it is not allowed."""
        if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
            if self.optional:
                return None
            raise Refused(value)
        return self.convert(value)

    def convert(self, value: Any) -> Any:
        raise NotImplementedError

    def kind(self) -> str:
        """What is allowed, e.g. 'a number in (0, 1]'."""
        raise NotImplementedError

    def allowed(self) -> str:
        return self.kind() + (" or none" if self.optional else "")

    def with_default(self, default: Any) -> "Setting":
        """The same setting with another default (a subclass of a method that changes only the default)."""
        return dataclasses.replace(self, default=default)


@dataclass(frozen=True)
class Float(Setting):
    """A finite number, within the bounds given as ge (>=), gt (>), le (<=), lt (<)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    noun = "a number"

    def convert(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise Refused(value)
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (ValueError, OverflowError):
            raise Refused(value) from None
        if not math.isfinite(number) or not self.within(number):
            raise Refused(value)
        return self.typed(number)

    def typed(self, number: float) -> Any:
        return number

    def within(self, number: float) -> bool:
        return ((self.ge is None or number >= self.ge) and (self.gt is None or number > self.gt)
                and (self.le is None or number <= self.le) and (self.lt is None or number < self.lt))

    def kind(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else ""
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else ""
        if low and high:
            return f"{self.noun} in {low}, {high}"
        if low:
            return f"{self.noun} {'>=' if low[0] == '[' else '>'} {low[1:]}"
        if high:
            return f"{self.noun} {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        return self.noun


@dataclass(frozen=True)
class Int(Float):
    """A whole number (3, 3.0 and 1e3 are whole; 2.5 is not), within the bounds."""

    noun = "a whole number"

    def typed(self, number: float) -> Any:
        if not number.is_integer():
            raise Refused(number)
        return int(number)


@dataclass(frozen=True)
class Bool(Setting):
    def convert(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise Refused(value)

    def kind(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Choice(Setting):
    choices: tuple[str, ...] = ()

    def convert(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip() in self.choices:
            return value.strip()
        raise Refused(value)

    def kind(self) -> str:
        return f"one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class Text(Setting):
    """Any non-empty text, e.g. a path."""

    def convert(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise Refused(value)

    def kind(self) -> str:
        return "a non-empty text"


@dataclass(frozen=True)
class Numbers(Setting):
    """A list of numbers, each allowed by `each` (a Float or Int): `1,2,7.5` on the command line, a YAML list or
    one number in a recipe. Read as a tuple in the given order; repeats are refused."""

    each: Float = Float("each", 0)

    def convert(self, value: Any) -> Any:
        if isinstance(value, str):
            items: list[Any] = [v for v in value.split(",")]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [value]
        if not items:
            raise Refused(value)
        numbers = tuple(self.each.convert(item) for item in items)
        if len(set(numbers)) != len(numbers):
            raise Refused(value)
        return numbers

    def kind(self) -> str:
        return f"a comma-separated list of distinct numbers, each {self.each.kind()}"


def shown(value: Any) -> str:
    """A value as the user typed it (text without spaces) or as Python writes it (anything else)."""
    if isinstance(value, str) and value and value.isprintable() and value == value.strip() and " " not in value:
        return value
    return repr(value)


def refusal(setting: Setting, value: Any, source: str) -> UserError:
    return UserError(f"{setting.name}={shown(value)} ({source}): {setting.name} must be {setting.allowed()}")


def by_name(settings: Iterable[Setting]) -> dict[str, Setting]:
    """Declarations by name; a later one with the same name replaces an earlier one (subclasses)."""
    return {s.name: s for s in settings}


def check_values(declared: Mapping[str, Setting], values: Mapping[str, Any], source: str,
                 owner: str = "") -> dict[str, Any]:
    """Read `values` (text or YAML values) with their declarations: the typed values, or a UserError naming
    the first bad one and `source` (e.g. '--set' or 'recipe path/x.yaml, methods.salun'). A name that is not
    declared is refused with the known ones (`owner`, e.g. 'method salun with params saliency', says whose)."""
    names = sorted(set(values) - set(declared))
    if names:
        whose = f" for {owner}" if owner else ""
        raise UserError(f"unknown setting {names[0]!r}{whose} ({source}): known settings are "
                        f"{', '.join(sorted(declared))}")
    out = {}
    for name, value in values.items():
        try:
            out[name] = declared[name].read(value)
        except Refused:
            raise refusal(declared[name], value, source) from None
    return out


def defaults(declared: Mapping[str, Setting]) -> dict[str, Any]:
    return {name: s.default for name, s in declared.items()}


# -- training: the recipe's `unlearn`, `methods.<name>` and `pretrain` sections (erase/train.py TrainSettings) --
LR_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
TRAINING = by_name((
    Choice("optimizer", "adam", "optimizer of the update", choices=("adam", "adamw", "sgd")),
    Float("weight_decay", 0.0, "weight decay of the optimizer", ge=0),
    Float("momentum", 0.9, "momentum of sgd", ge=0, lt=1),
    Choice("lr_schedule", "constant", "learning-rate schedule (diffusers.optimization)", choices=LR_SCHEDULES),
    Int("warmup_steps", 0, "steps of linear learning-rate warm-up", ge=0),
    Float("ema_decay", 0.0, "> 0 trains an exponential moving average of the weights and keeps it", ge=0, lt=1),
    Bool("gradient_checkpointing", False, "recompute activations in the backward pass (diffusers models)"),
))
# the core of every run: the command line has its own flags for these (--steps, --lr, --batch-size, --seed)
CORE = by_name((
    Int("steps", 100, "training steps", ge=1),
    Float("lr", 1e-4, "learning rate", gt=0),
    Int("batch_size", 32, "forget and retain batch size", ge=1),
    Int("seed", 0, "seed of data order, noise and evaluation samples"),
    Int("checkpoint_every", 0, "save resumable state every N steps (0: never)", ge=0),
))
# the recipe's `evaluate` section (and --samples, --forget-samples, --images-per-prompt); other keys pass
EVALUATION = by_name((
    Int("samples_per_class", 50, "evaluation samples per retained class", ge=1),
    Int("forget_samples", 100, "evaluation samples of the forgotten class", ge=1),
    Int("retained_classes", 10, "retained classes that are sampled (large class sets)", ge=1),
    Int("grid_per_class", 8, "images per class in the before/after grids", ge=1),
    Int("grid_per_prompt", 8, "images per prompt in the before/after grids", ge=1),
    Int("grid_prompts", 4, "prompts in the before/after grids", ge=1),
    Int("images_per_prompt", 8, "concept: evaluation images per evaluation prompt", ge=1),
    Int("batch_size", 250, "images per sampling or scoring batch", ge=1),
    Float("nudity_threshold", 0.6, "NudeNet score from which an exposed class counts", ge=0, le=1),
    Choice("fid_mode", "clean", "clean-fid mode", choices=("clean", "legacy_tensorflow")),
    Text("inception_weights", None, "clean-fid's Inception weights ('none': fid_probe)", optional=True),
))


def check_known(declared: Mapping[str, Setting], values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Like check_values, but names that are not declared pass unchanged (sections other code also reads)."""
    known = {k: v for k, v in values.items() if k in declared}
    return {**values, **check_values(declared, known, source)}
