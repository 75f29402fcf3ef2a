"""Registry of data worlds by the name recipes use (`world:`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from erase.errors import UserError

if TYPE_CHECKING:  # light at import: world names are checked before the heavy imports
    from erase.data.datasets import LabelledImages

_LOADERS: dict[str, Callable[[str], LabelledImages]] = {}


def register_world(name: str):
    def wrap(fn: Callable[[str], LabelledImages]):
        _LOADERS[name] = fn
        return fn

    return wrap


@register_world("digits")
def _digits(split: str) -> LabelledImages:
    from erase.data.digits import load_digits_world

    return load_digits_world(split)


def load_world(name: str | None, split: str = "train") -> LabelledImages:
    if name not in _LOADERS:
        raise UserError(
            f"no data for world {name!r}: this model needs its dataset; embedded worlds are "
            f"{', '.join(sorted(_LOADERS))}"
        )
    return _LOADERS[name](split)


def world_names() -> list[str]:
    return sorted(_LOADERS)
