"""Small ImageFolder datasets rendered with Pillow, for tests and benchmarks on data erase was not tuned for.

- `letters`: one glyph per class (A, B, C, ...), grayscale, jittered in position, size, rotation and stroke,
  with pixel noise;
- `patterns`: one texture per class (stripes in four directions, checks, dots, rings, cross-hatch, waves,
  a radial fan), RGB, with random colours, frequency and phase.

Both write DIR/<class>/<i>.png (or DIR/train/... and DIR/test/... with `split`), the layout `pretrain --data`
and `--data` read. Everything is drawn from one seed, so a folder is reproducible byte for byte.
"""
from __future__ import annotations

import math
import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PATTERNS = ("horizontal", "vertical", "diagonal", "antidiagonal", "checks", "dots", "rings", "hatch", "waves",
            "fan")
RENDER_SCALE = 4  # glyphs are drawn at 4x and downsampled: smooth edges at 16 px


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def letter_image(letter: str, size: int, rng: np.random.Generator, noise: float = 0.04) -> Image.Image:
    """One glyph, white on black, randomly scaled (65-90 % of the side), shifted, rotated and noised."""
    big = size * RENDER_SCALE
    canvas = Image.new("L", (big, big), 0)
    font = _font(int(big * rng.uniform(0.65, 0.9)))
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font, stroke_width=0)
    stroke = int(rng.integers(0, 2)) * RENDER_SCALE // 2
    x = (big - (right - left)) / 2 - left + rng.uniform(-0.08, 0.08) * big
    y = (big - (bottom - top)) / 2 - top + rng.uniform(-0.08, 0.08) * big
    draw.text((x, y), letter, fill=int(rng.integers(190, 256)), font=font, stroke_width=stroke,
              stroke_fill=255)
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR)
    array = np.asarray(canvas.resize((size, size), Image.LANCZOS), dtype=np.float32) / 255
    array = np.clip(array + rng.normal(0, noise, array.shape), 0, 1)
    return Image.fromarray((array * 255).round().astype(np.uint8), mode="L")


def pattern_image(kind: str, size: int, rng: np.random.Generator, noise: float = 0.05) -> Image.Image:
    """One texture in two random colours; frequency and phase vary, the kind of pattern never does."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    freq = rng.uniform(2.5, 4.0) * 2 * math.pi
    phase = rng.uniform(0, 2 * math.pi)
    cx, cy = rng.uniform(0.35, 0.65, size=2)
    radius = np.hypot(x - cx, y - cy)
    fields = {
        "horizontal": np.sin(freq * y + phase),
        "vertical": np.sin(freq * x + phase),
        "diagonal": np.sin(freq * (x + y) / math.sqrt(2) + phase),
        "antidiagonal": np.sin(freq * (x - y) / math.sqrt(2) + phase),
        "checks": np.sin(freq * x + phase) * np.sin(freq * y + phase),
        "dots": np.cos(freq * x + phase) + np.cos(freq * y + phase) - 1.2,
        "rings": np.sin(2 * freq * radius + phase),
        "hatch": np.maximum(np.sin(freq * (x + y) / math.sqrt(2) + phase),
                            np.sin(freq * (x - y) / math.sqrt(2) + phase)) - 0.6,
        "waves": np.sin(freq * y + 1.5 * np.sin(freq * x) + phase),
        "fan": np.sin(6 * np.arctan2(y - cy, x - cx) + phase),
    }
    mask = (fields[kind] > 0).astype(np.float32)[..., None]
    dark, light = rng.uniform(0.0, 0.35, 3), rng.uniform(0.65, 1.0, 3)
    if rng.random() < 0.5:
        dark, light = light, dark
    array = mask * light + (1 - mask) * dark + rng.normal(0, noise, (size, size, 3))
    return Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8), mode="RGB")


def _write(root: Path, classes: list[str], draw, per_class: int, seed: int, split: float | None) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    for class_index, name in enumerate(classes):
        for i in range(per_class):
            part = ""
            if split is not None:  # the last `split` fraction of each class is the test split
                part = "test" if i >= per_class - round(split * per_class) else "train"
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            draw(name, rng).save(folder / f"{i:05d}.png")
    return root


def write_letters(root: Path, classes: int | str | list[str] = 4, per_class: int = 64, size: int = 16,
                  seed: int = 0, split: float | None = None) -> Path:
    """DIR/<letter>/<i>.png for the first `classes` capital letters (or the letters given)."""
    names = list(string.ascii_uppercase[:classes]) if isinstance(classes, int) else list(classes)
    return _write(root, names, lambda name, rng: letter_image(name, size, rng), per_class, seed, split)


def write_patterns(root: Path, classes: int | list[str] = 4, per_class: int = 64, size: int = 16,
                   seed: int = 0, split: float | None = None) -> Path:
    """DIR/<pattern>/<i>.png for the first `classes` kinds of PATTERNS (or the kinds given)."""
    names = list(PATTERNS[:classes]) if isinstance(classes, int) else list(classes)
    unknown = sorted(set(names) - set(PATTERNS))
    if unknown:
        raise ValueError(f"unknown patterns {unknown}; known: {', '.join(PATTERNS)}")
    return _write(root, names, lambda name, rng: pattern_image(name, size, rng), per_class, seed, split)


DATASETS = {"letters": write_letters, "patterns": write_patterns}
