"""The shipped t2i-shapes model through `erase concept --steps auto`: SalUn and ESD erase "triangle".

The commands in docs/concept-erasure.md generate 256 forget and 256 retain images, train on batches of 16
and score 8 images per evaluation prompt. Here 64 forget and 128 retain images, batches of 8 and 4 images
per evaluation prompt (48 images of the 12 captions naming a triangle, 48 of each other shape), with
`--steps auto`: the recipe's steps (500, 400) are the budget and the run stops at the first check that sees
the triangle gone without losing the other shapes. Measured (2026-12-03, seed 0): SalUn stopped at step 200
with no triangle left, square 6 and cross 4 points down (at batch 16 it needed 300 steps: twice the time;
the recipe keeps 16, since its fixed 500 steps at batch 8 overshoot: docs/auto-steps.md);
ESD at step 80 with no triangle left and no shape down. The target: triangle rate below 5 %, every other
shape within 10 points of the original model (one image is about 2 points). The ESD test reuses the images
and the original model's scores of the SalUn test (tests/conftest.py).
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
    recipe["evaluate"].update(images_per_prompt=4, grid_prompts=1, grid_per_prompt=2)
    path = workdir / "t2i-shapes-reduced.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("method", ["salun", "esd"])
def test_erasing_triangle(cli, workdir, reduced_recipe, method):
    code, out, err = cli("concept", "--model", reduced_recipe, "--prompt", "triangle", "--method", method,
                         "--steps", "auto", "--batch-size", "8", "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    budget = load_recipe("t2i-shapes").methods[method]["steps"]
    assert report["auto_steps"]["target_met"] and report["steps"] <= budget
    metrics = report["metrics"]
    original, unlearned = metrics["original"], metrics["unlearned"]
    assert original["concept_rate"] > 0.9  # the model draws triangles before
    assert unlearned["concept_rate"] < 0.05, unlearned["per_class_accuracy"]
    for shape in ("circle", "square", "cross"):
        assert unlearned["per_class_accuracy"][shape] >= original["per_class_accuracy"][shape] - 0.1, shape
