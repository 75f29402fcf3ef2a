"""Methods by name: `@register("name")` on a Method class makes it a `--method`."""
from __future__ import annotations

from erase.methods.base import Method
from erase.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")
register = METHODS.register
method_names = METHODS.names
method_class = METHODS.get


def make_method(name: str, objective: str | None = None, params: str | None = None, **hyper) -> Method:
    return method_class(name)(objective=objective, params=params, **hyper)
