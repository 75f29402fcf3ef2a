"""Sampling and labelled grids: one row per class (or prompt), the same seeds for every model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from diffusers.utils import make_image_grid
from PIL import Image, ImageDraw, ImageFont

from erase.data.class_names import parse_classes  # noqa: F401  (re-exported: its home is erase.data.class_names)

TILE = 48  # pixels per sample in a grid; small worlds are upscaled (nearest) so digits stay crisp


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255], the values a PNG file of them holds."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Images in [-1, 1] (N, C, H, W) -> PIL images."""
    array = to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()
    mode = "L" if array.shape[-1] == 1 else "RGB"
    return [Image.fromarray(a[..., 0] if mode == "L" else a, mode=mode).convert("RGB") for a in array]


def _font(size: int = 14) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def labelled_grid(rows: Sequence[list[Image.Image]], row_labels: Sequence[str], title: str | None = None,
                  tile: int = TILE) -> Image.Image:
    """A grid with one labelled row per class/prompt (diffusers' make_image_grid does the tiling)."""
    cols = max(len(r) for r in rows)
    blank = Image.new("RGB", (tile, tile), "white")  # rows may be ragged (fewer samples of some classes)
    tiles = [row[j].resize((tile, tile), Image.NEAREST) if j < len(row) else blank
             for row in rows for j in range(cols)]
    grid = make_image_grid(tiles, rows=len(rows), cols=cols)
    font = _font()
    label_width = max(40, 8 + max(int(font.getlength(s)) for s in row_labels))
    top = 24 if title else 0
    canvas = Image.new("RGB", (label_width + grid.width, top + grid.height), "white")
    canvas.paste(grid, (label_width, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((label_width, 4), title, fill="black", font=font)
    for i, label in enumerate(row_labels):
        draw.text((4, top + i * tile + tile // 2 - 7), label, fill="black", font=font)
    return canvas


def wrap_label(text: str, font, max_width: int, max_lines: int) -> list[str]:
    """Split a row label (a class name or a whole prompt) into lines that fit; cut the last one with '...'."""
    lines: list[str] = []
    for word in str(text).split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += " ..."
    return [line if font.getlength(line) <= max_width else line[: max(1, max_width // 7)] + "..." for line in lines]


def before_after_grid(before: Sequence[list[Image.Image]], after: Sequence[list[Image.Image]],
                      row_labels: Sequence[str], highlight: Sequence[int] = (), tile: int = TILE,
                      titles: tuple[str, str] = ("before", "after"), gap: int = 16,
                      max_label_width: int = 220) -> Image.Image:
    """One image: a row label column, then the `before` samples and the `after` samples of each row side by
    side (same seeds, so column j of both halves started from the same noise). Rows in `highlight` (the
    forgotten classes or prompts) get a red label."""
    if len(before) != len(row_labels) or len(after) != len(row_labels):
        raise ValueError("before, after and row_labels need one entry per row")
    font = _font()
    line_height = 16
    wrapped = [wrap_label(label, font, max_label_width, max(1, tile // line_height)) for label in row_labels]
    label_width = 8 + max(40, max(int(font.getlength(line)) for lines in wrapped for line in lines))
    cols = max(len(r) for r in [*before, *after])
    block = cols * tile
    top = 24
    canvas = Image.new("RGB", (label_width + 2 * block + gap, top + len(row_labels) * tile), "white")
    draw = ImageDraw.Draw(canvas)
    for half, (rows, title) in enumerate(zip((before, after), titles)):
        left = label_width + half * (block + gap)
        draw.text((left, 4), title, fill="black", font=font)
        for i, row in enumerate(rows):
            for j, img in enumerate(row):
                canvas.paste(img.resize((tile, tile), Image.NEAREST), (left + j * tile, top + i * tile))
    for i, lines in enumerate(wrapped):
        y = top + i * tile + (tile - line_height * len(lines)) // 2
        for k, line in enumerate(lines):
            draw.text((4, y + k * line_height), line, fill="crimson" if i in highlight else "black", font=font)
    return canvas


@dataclass
class GridRows:
    """Sample rows with their labels (class names or prompts); `highlight` rows are the forgotten ones."""

    rows: list[list[Image.Image]]
    labels: list[str]
    highlight: list[int] = field(default_factory=list)

    def image(self, title: str) -> Image.Image:
        return labelled_grid(self.rows, self.labels, title=title)


def save_before_after(folder: Path, before: GridRows, after: GridRows) -> None:
    """grids/before.png, grids/after.png and grids/before_after.png (same seeds, one labelled row each)."""
    save_image_atomic(before.image("before"), folder / "grids" / "before.png")
    save_image_atomic(after.image("after"), folder / "grids" / "after.png")
    save_image_atomic(before_after_grid(before.rows, after.rows, before.labels, highlight=before.highlight),
                      folder / "grids" / "before_after.png")


def prompt_rows(images: torch.Tensor, index: torch.Tensor, prompts: int) -> list[list[Image.Image]]:
    """One row per prompt: the samples whose prompt index (generate_for_prompts' second output) is i."""
    pil = to_pil(images)
    return [[pil[j] for j in (index == i).nonzero().flatten().tolist()] for i in range(prompts)]


def class_rows(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[int], per_row: int):
    """The first `per_row` samples of each class, in class order."""
    pil = to_pil(images)
    return [[pil[i] for i in (labels == c).nonzero().flatten()[:per_row].tolist()] for c in classes]


def save_image_atomic(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)
