"""Named class lists a recipe can refer to instead of spelling out every name (`class_names: imagenet`), and
class lists on the command line (`sample --classes 0-9`)."""
from __future__ import annotations

from pathlib import Path

from erase.errors import UserError

# torchvision's ImageNet-1k category names (ResNet50_Weights.IMAGENET1K_V2.meta["categories"]), one per line in
# class-id order; a file, so that resolving `--model dit-imagenet` does not import torchvision (and torch)
IMAGENET_FILE = Path(__file__).resolve().parent / "imagenet_classes.txt"


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k names in class-id order, as torchvision ships them (offline, no weights needed)."""
    return IMAGENET_FILE.read_text().splitlines()


NAMED_LISTS = {"imagenet": imagenet_class_names}


def resolve_class_names(value, source: str) -> list[str]:
    """A list stays as it is; a string names one of NAMED_LISTS."""
    if isinstance(value, str):
        if value not in NAMED_LISTS:
            raise UserError(f"recipe {source}: unknown class list {value!r}; use one of {sorted(NAMED_LISTS)} "
                            f"or a list of names")
        return NAMED_LISTS[value]()
    return [str(v) for v in value]


def parse_classes(text: str, num_classes: int, resolve) -> list[int]:
    """'0-9', '3', '1,4,7' or class names -> class ids (validated by `resolve`)."""
    chosen: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            raise UserError(f"empty entry in class list {text!r}: write e.g. 0-9 or 1,4,7")
        if "-" in part and all(p.strip().isdigit() for p in part.split("-", 1)):
            lo, hi = (int(p) for p in part.split("-", 1))
            if lo > hi:
                raise UserError(f"class range {part!r} runs backwards: write {hi}-{lo}")
            chosen += [resolve(i) for i in range(lo, hi + 1)]
        else:
            chosen.append(resolve(part))
    return chosen
