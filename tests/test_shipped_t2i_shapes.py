"""The shipped t2i-shapes model through `erase concept`: SalUn and ESD erase "triangle" (the issue's target).

The commands in docs/concept-erasure.md generate 256 forget and 256 retain images, train 500 (SalUn)
or 400 (ESD) steps and score 8 images per evaluation prompt. Here the recipe's steps on half the data and
4 images per prompt (48 images of the 12 captions naming a triangle, 48 of each other shape); the target
still holds: triangle rate below 5 %, every other shape within 10 points of the original model (one image
is about 2 points). SalUn needs its full schedule: after 100 steps the triangle is gone but the cross is
still 27 points down (it recovers by step 500). The recipe's steps are run in full (`--steps`, as before
`--steps auto` became the default; auto on t2i-shapes is not measured here).
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
    recipe["train"].update(forget_images=128, retain_images=128)
    recipe["evaluate"].update(images_per_prompt=4, grid_prompts=1, grid_per_prompt=2)
    path = workdir / "t2i-shapes-reduced.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("method", ["salun", "esd"])
def test_erasing_triangle(cli, workdir, reduced_recipe, method):
    steps = load_recipe("t2i-shapes").methods[method]["steps"]
    code, out, err = cli("concept", "--model", reduced_recipe, "--prompt", "triangle", "--method", method,
                         "--steps", steps, "--out", "run")
    assert code == 0, err
    metrics = json.loads((workdir / "run" / "EVAL.json").read_text())["metrics"]
    original, unlearned = metrics["original"], metrics["unlearned"]
    assert original["concept_rate"] > 0.9  # the model draws triangles before
    assert unlearned["concept_rate"] < 0.05, unlearned["per_class_accuracy"]
    for shape in ("circle", "square", "cross"):
        assert unlearned["per_class_accuracy"][shape] >= original["per_class_accuracy"][shape] - 0.1, shape
