"""The embedded shapes world: Pillow-rendered shape x colour x background texture, each with a caption.

Images are 16x16 RGB in [-1, 1] ("a red triangle on a striped background"). Shapes are drawn at 4x and
downsampled, so edges are anti-aliased the way a generator's samples are. A fixed seed renders the same
world everywhere; the train/test split is by image, every combination appears in both.

Light at import (the captions are what `erase concept` checks its arguments with); numpy, torch and Pillow
come in with the functions that render.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from erase.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

SHAPES = ["circle", "square", "triangle", "cross"]
COLOURS = ["red", "green", "blue", "yellow"]
TEXTURES = ["plain", "striped", "checkered"]
ATTRIBUTES = {"shape": SHAPES, "colour": COLOURS, "texture": TEXTURES}
RGB = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40)}
LIGHT, DARK = 205, 105  # background greys: the shape colours stay apart from both
RESOLUTION = 16
SCALE = 4  # render at 4x, then downsample
PER_COMBINATION = {"train": 40, "test": 10}
SEEDS = {"train": 0, "test": 1}


def caption(shape: str | None = None, colour: str | None = None, texture: str | None = None) -> str:
    """'a red triangle on a striped background'; any attribute may be left out (at least one given)."""
    noun = shape or "shape"
    words = ["a"] + ([colour] if colour else []) + [noun]
    if texture:
        words += ["on", "a", texture, "background"]
    return " ".join(words)


def _background(texture: str, size: int) -> Image.Image:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (LIGHT,) * 3)
    draw = ImageDraw.Draw(image)
    cell = 2 * SCALE  # 2 output pixels
    if texture == "striped":
        for x in range(0, size, 2 * cell):
            draw.rectangle([x, 0, x + cell - 1, size], fill=(DARK,) * 3)
    elif texture == "checkered":
        cell = 3 * SCALE
        for y in range(0, size, cell):
            for x in range(0, size, cell):
                if (x // cell + y // cell) % 2:
                    draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(DARK,) * 3)
    return image


def render(shape: str, colour: str, texture: str, rng: random.Random) -> np.ndarray:
    """One uint8 (3, 16, 16) image; size and position jitter come from `rng`."""
    import numpy as np
    from PIL import Image, ImageDraw

    size = RESOLUTION * SCALE
    image = _background(texture, size)
    draw = ImageDraw.Draw(image)
    half = rng.uniform(4.0, 6.0) * SCALE
    cx = size / 2 + rng.uniform(-1.5, 1.5) * SCALE
    cy = size / 2 + rng.uniform(-1.5, 1.5) * SCALE
    fill = RGB[colour]
    if shape == "circle":
        draw.ellipse([cx - half, cy - half, cx + half, cy + half], fill=fill)
    elif shape == "square":
        s = half * 0.85
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx + half, cy + half * 0.8), (cx - half, cy + half * 0.8)], fill=fill)
    elif shape == "cross":
        w = half * 0.38
        draw.rectangle([cx - half, cy - w, cx + half, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - half, cx + w, cy + half], fill=fill)
    else:
        raise ValueError(shape)
    small = image.resize((RESOLUTION, RESOLUTION), Image.LANCZOS)
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1)


def combinations() -> list[tuple[str, str, str]]:
    return [(s, c, t) for s in SHAPES for c in COLOURS for t in TEXTURES]


def training_caption(shape: str, colour: str, texture: str, rng: random.Random) -> str:
    """Mostly the full caption; sometimes a partial one, so prompts naming one or two attributes work."""
    r = rng.random()
    if r < 0.55:
        return caption(shape, colour, texture)
    if r < 0.7:
        return caption(shape, colour)
    if r < 0.8:
        return caption(shape, None, texture)
    if r < 0.9:
        return caption(shape)
    return caption(None, colour, texture) if r < 0.95 else caption(None, colour)


@dataclass
class ShapesData:
    """Rendered images (uint8), attribute labels (N, 3: shape, colour, texture ids) and captions."""

    images: torch.Tensor
    labels: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self) -> torch.Tensor:
        return self.images.float() / 127.5 - 1


@lru_cache(maxsize=2)
def load_shapes(split: str = "train") -> ShapesData:
    """`train` (40 per combination, 1,920 images) or `test` (10 per combination), seeded."""
    if split not in PER_COMBINATION:
        raise UserError(f"the shapes world has splits train and test, not {split!r}")
    import numpy as np
    import torch

    rng = random.Random(SEEDS[split])
    images, labels, captions = [], [], []
    for shape, colour, texture in combinations():
        for _ in range(PER_COMBINATION[split]):
            images.append(render(shape, colour, texture, rng))
            labels.append([SHAPES.index(shape), COLOURS.index(colour), TEXTURES.index(texture)])
            captions.append(training_caption(shape, colour, texture, rng))
    return ShapesData(torch.from_numpy(np.stack(images)), torch.tensor(labels), captions)


def attribute_of(value: str) -> str:
    """'triangle' -> 'shape'; an unknown value is a UserError listing the known ones."""
    text = value.strip().lower()
    for attribute, values in ATTRIBUTES.items():
        if text in values:
            return attribute
    known = ", ".join(v for values in ATTRIBUTES.values() for v in values)
    raise UserError(f"the shapes world has no concept {value!r}: use a shape, colour or texture ({known})")


def caption_labels(prompt: str) -> list[int]:
    """Attribute ids a caption asks for (shape, colour, texture); -1 where it leaves one open."""
    words = prompt.lower().split()
    return [next((values.index(w) for w in words if w in values), -1) for values in ATTRIBUTES.values()]


def concept_captions(value: str, anchor: str | None = None) -> tuple[list[str], list[str], list[str]]:
    """Prompts for a concept of the shapes world: (forget prompts, their anchors, retain prompts).

    Forget prompts are every caption form that names the value; each anchor names `anchor` instead, another
    value of the same attribute (default: the next one, triangle -> cross, red -> green: SalUn's fixed
    (c + 1) mod K relabelling). Retain prompts are the captions that name another value of that attribute.
    """
    attribute = attribute_of(value)
    values = ATTRIBUTES[attribute]
    value = value.strip().lower()
    anchor_value = values[(values.index(value) + 1) % len(values)] if anchor is None else anchor.strip().lower()
    if anchor_value not in values or anchor_value == value:
        others = ", ".join(v for v in values if v != value)
        raise UserError(f"--anchor {anchor!r}: the anchor of the {attribute} {value!r} is another {attribute} "
                        f"({others})")

    def mentions(prompt: str, v: str) -> bool:
        return v in prompt.split()

    everything = [caption(s, c, t) for s, c, t in combinations()]
    everything += sorted({caption(s, c) for s, c, _ in combinations()})
    everything += sorted({caption(s, None, t) for s, _, t in combinations()})
    everything += [caption(s) for s in SHAPES]
    forget = [p for p in everything if mentions(p, value)]
    anchors = [" ".join(anchor_value if w == value else w for w in p.split()) for p in forget]
    retain = [p for p in everything if not mentions(p, value)
              and any(mentions(p, other) for other in values if other != value)]
    return forget, anchors, retain


def evaluation_captions(value: str) -> tuple[list[str], list[str]]:
    """Full captions that ask for the value, and full captions that ask for another value of its attribute."""
    attribute = attribute_of(value)
    index = list(ATTRIBUTES).index(attribute)
    value = value.strip().lower()
    full = [caption(s, c, t) for s, c, t in combinations()]
    asks = [p for p, combo in zip(full, combinations()) if combo[index] == value]
    others = [p for p, combo in zip(full, combinations()) if combo[index] != value]
    return asks, others


def without(prompt: str, value: str) -> str:
    """The caption with one attribute value taken out, as the world's captions say it: 'a red triangle on a
    striped background' -> 'a red shape on a striped background' (triangle), 'a triangle on a striped
    background' (red); the empty prompt when the caption names nothing else ('a triangle')."""
    attribute = attribute_of(value)
    asked = {name: values[i] if i >= 0 else None
             for (name, values), i in zip(ATTRIBUTES.items(), caption_labels(prompt))}
    asked[attribute] = None
    return caption(**asked) if any(asked.values()) else ""


def concept_caption(value: str) -> str:
    """The concept alone, as the world's captions say it: 'a triangle', 'a red shape', 'a shape on a
    striped background'."""
    attribute = attribute_of(value)
    return caption(**{attribute: value.strip().lower()})
