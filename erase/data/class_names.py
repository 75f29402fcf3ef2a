"""Named class lists a recipe can refer to instead of spelling out every name (`class_names: imagenet`)."""
from __future__ import annotations

from erase.errors import UserError


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k names in class-id order, as torchvision ships them (offline, no weights needed)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


NAMED_LISTS = {"imagenet": imagenet_class_names}


def resolve_class_names(value, source: str) -> list[str]:
    """A list stays as it is; a string names one of NAMED_LISTS."""
    if isinstance(value, str):
        if value not in NAMED_LISTS:
            raise UserError(f"recipe {source}: unknown class list {value!r}; use one of {sorted(NAMED_LISTS)} "
                            f"or a list of names")
        return NAMED_LISTS[value]()
    return [str(v) for v in value]
