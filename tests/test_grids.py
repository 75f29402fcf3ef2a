"""Before/after grids: one image, one labelled row per class or prompt, the two halves from the same seeds."""
from PIL import Image

from erase.sample import TILE, before_after_grid, wrap_label, _font


def _rows(colours, per_row=3):
    return [[Image.new("RGB", (16, 16), colour)] * per_row for colour in colours]


def test_before_after_grid_layout_and_prompt_labels():
    labels = ["0", "a red triangle on a striped background, drawn very carefully in the style of a child"]
    grid = before_after_grid(_rows(["white", "grey"]), _rows(["black", "blue"]), labels, highlight=[1])
    label_width = grid.width - 2 * 3 * TILE - 16
    assert 40 <= label_width <= 8 + 220
    assert grid.height == 24 + 2 * TILE
    # left half shows the before rows, right half the after rows, row by row
    assert grid.getpixel((label_width + 5, 24 + 5)) == (255, 255, 255)
    assert grid.getpixel((label_width + 3 * TILE + 16 + 5, 24 + 5)) == (0, 0, 0)
    assert grid.getpixel((label_width + 3 * TILE + 16 + 5, 24 + TILE + 5)) == (0, 0, 255)


def test_long_labels_wrap_and_are_cut():
    font = _font()
    lines = wrap_label("one two three four five six seven eight nine ten eleven twelve", font, 60, 3)
    assert len(lines) == 3 and lines[-1].endswith("...")
    assert wrap_label("3", font, 60, 3) == ["3"]


def test_ragged_rows_are_padded():
    """More samples of the forgotten class than of the others (the default evaluation) still make a grid."""
    from erase.sample import labelled_grid

    grid = labelled_grid([[Image.new("RGB", (16, 16), "black")] * n for n in (2, 5, 3)], ["a", "b", "c"], title="t")
    assert grid.height == 24 + 3 * TILE and grid.getpixel((grid.width - 5, 24 + 5)) == (255, 255, 255)
