"""Methods by name: `@register("name")` on a Method class makes it a `--method`."""
from __future__ import annotations

from typing import Callable

from erase.errors import UserError
from erase.methods.base import Method

_METHODS: dict[str, type[Method]] = {}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    def wrap(cls: type[Method]) -> type[Method]:
        if "defaults" in vars(cls):  # the old way; nothing would read it, so a setting would silently vanish
            raise TypeError(f"method {name}: declare its settings as `settings = (Float(...), ...)` "
                            f"(erase/settings.py), not `defaults`")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return wrap


def method_names() -> list[str]:
    return sorted(_METHODS)


def method_class(name: str) -> type[Method]:
    if name not in _METHODS:
        raise UserError(f"unknown method {name!r}: use one of {', '.join(method_names())}")
    return _METHODS[name]


def make_method(name: str, objective: str | None = None, params: str | None = None, **hyper) -> Method:
    return method_class(name)(objective=objective, params=params, **hyper)
