"""Classes by name: the registry behind `--method` and `--params` (a new entry is one decorated class)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from erase.errors import UserError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # "method", "parameter selection": how errors name an entry
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def wrap(cls: T) -> T:
            if "defaults" in vars(cls):  # the old way; nothing would read it, so a setting would silently vanish
                raise TypeError(f"{self.kind} {name}: declare its settings as `settings = (Float(...), ...)` "
                                f"(erase/settings.py), not `defaults`")
            cls.name = name
            self._classes[name] = cls
            return cls

        return wrap

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> T:
        if name not in self._classes:
            raise UserError(f"unknown {self.kind} {name!r}: use one of {', '.join(self.names())}")
        return self._classes[name]
