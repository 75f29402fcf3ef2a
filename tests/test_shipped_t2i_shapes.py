"""The shipped t2i-shapes model: erasing "triangle" with ESD and with SalUn, on a reduced sample budget.

The full commands (README, "Concept erasure") generate 128 forget and 256 retain images and score 4 images
per evaluation prompt; here 2 per prompt and half the data, so both runs fit CI's budget. The thresholds are
the issue's: triangle rate below 5 %, every other shape within a few points of the original.
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
    recipe["train"].update(forget_images=64, retain_images=128)
    recipe["evaluate"].update(images_per_prompt=2, grid_prompts=2, grid_per_prompt=4)
    path = workdir / "t2i-shapes-reduced.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("method", ["esd", "salun"])
def test_erasing_triangle(cli, workdir, reduced_recipe, method):
    code, out, err = cli("concept", "--model", reduced_recipe, "--prompt", "triangle", "--method", method,
                         "--out", f"run-{method}")
    assert code == 0, err
    metrics = json.loads((workdir / f"run-{method}" / "EVAL.json").read_text())["metrics"]
    original, unlearned = metrics["original"], metrics["unlearned"]
    assert original["concept_rate"] > 0.8  # the model draws triangles before
    assert unlearned["concept_rate"] < 0.05
    for shape in ("circle", "square", "cross"):
        assert unlearned["per_class_accuracy"][shape] >= original["per_class_accuracy"][shape] - 0.06, shape
