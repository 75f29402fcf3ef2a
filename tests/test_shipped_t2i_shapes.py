"""The shipped t2i-shapes model through `erase concept` (SalUn, "triangle"), on a small budget.

The README commands (section "Concept erasure") generate 128 forget and 256 retain images, train 500 steps
and score 4 images per evaluation prompt; here a quarter of the data, 100 steps and 1 image per prompt, so
the run fits CI's budget. It checks the shipped weights, probe and prompts work together and that the
triangle rate goes down; the issue's target (< 5 %, other shapes within a few points) is not reached yet
even by the full commands (README), so it is not asserted here.
"""
import json

import pytest
import yaml

from erase.config import PIPELINES_DIR, load_recipe

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (PIPELINES_DIR / "t2i-shapes" / "PRETRAIN.json").is_file(),
                                                 reason="t2i-shapes weights are not shipped in this checkout")]


@pytest.fixture
def reduced_recipe(workdir):
    recipe = load_recipe("t2i-shapes").to_dict()
    recipe["weights"] = str(PIPELINES_DIR / "t2i-shapes")
    recipe["train"].update(forget_images=32, retain_images=64)
    recipe["evaluate"].update(images_per_prompt=1, grid_prompts=1, grid_per_prompt=2)
    path = workdir / "t2i-shapes-reduced.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_erasing_triangle_with_salun(cli, workdir, reduced_recipe):
    code, out, err = cli("concept", "--model", reduced_recipe, "--prompt", "triangle", "--method", "salun",
                         "--steps", "100", "--out", "run")
    assert code == 0, err
    metrics = json.loads((workdir / "run" / "EVAL.json").read_text())["metrics"]
    original, unlearned = metrics["original"], metrics["unlearned"]
    assert original["concept_rate"] > 0.9  # the model draws triangles before
    assert unlearned["concept_rate"] < original["concept_rate"]
    assert unlearned["retained_accuracy"] >= original["retained_accuracy"] - 0.2
