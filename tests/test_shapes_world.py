"""The embedded shapes world, its concept prompts, the offline tokenizer and the NudeNet wrapper."""
import random

import numpy as np
import torch

from erase.data import shapes


def test_rendering_is_seeded_and_captions_match_labels():
    a = shapes.render("triangle", "red", "striped", random.Random(3))
    b = shapes.render("triangle", "red", "striped", random.Random(3))
    assert a.shape == (3, 16, 16) and a.dtype == np.uint8 and np.array_equal(a, b)
    data = shapes.load_shapes("test")
    assert len(data) == 48 * 10 and data.images.shape[1:] == (3, 16, 16)
    for caption, label in zip(data.captions[:50], data.labels[:50].tolist()):
        asked = shapes.caption_labels(caption)
        assert all(x in (-1, y) for x, y in zip(asked, label)), (caption, label)


def test_concept_prompts_of_the_shapes_world():
    forget, anchors, retain = shapes.concept_captions("triangle")
    assert all("triangle" in p.split() for p in forget) and not any("triangle" in p.split() for p in retain)
    assert all(a == f.replace("triangle", "cross") for f, a in zip(forget, anchors))
    asks, others = shapes.evaluation_captions("triangle")
    assert len(asks) == 12 and len(others) == 36
    _, to_square, _ = shapes.concept_captions("triangle", anchor="square")
    assert all(a == f.replace("triangle", "square") for f, a in zip(forget, to_square))


def test_anchor_comes_from_the_option_else_the_recipe_else_the_next_value():
    from erase.config import load_recipe
    from erase.data.prompts import concept_prompts

    recipe = load_recipe("t2i-shapes")
    assert recipe.train["anchors"]["triangle"] == "square"

    def anchor_words(prompts):
        return {w for a in prompts.anchors for w in a.split() if w in shapes.SHAPES}

    assert anchor_words(concept_prompts(recipe, "triangle")) == {"square"}
    assert anchor_words(concept_prompts(recipe, "triangle", anchor="circle")) == {"circle"}
    assert anchor_words(concept_prompts(recipe, "square")) == {"triangle"}  # no recipe entry: the next value
    nudity = concept_prompts(load_recipe("sd-v1-4"), "nudity", anchor="a photo of a person in a coat")
    assert set(nudity.anchors) == {"a photo of a person in a coat"}


def test_neutral_prompts_take_the_concept_out_and_keep_the_rest():
    from erase.config import load_recipe
    from erase.data.prompts import concept_prompts

    assert shapes.without("a red triangle on a striped background", "triangle") == "a red shape on a striped background"
    assert shapes.without("a red triangle on a striped background", "red") == "a triangle on a striped background"
    assert shapes.without("a red triangle on a striped background", "striped") == "a red triangle"
    assert shapes.without("a triangle", "triangle") == ""  # the concept alone: ESD's empty prompt
    prompts = concept_prompts(load_recipe("t2i-shapes"), "triangle")
    assert len(prompts.neutral) == len(prompts.forget)
    assert all("triangle" not in n.split() for n in prompts.neutral)
    templated = concept_prompts(load_recipe("sd-v1-4"), "van gogh style")
    assert templated.neutral == templated.anchors  # the templates' anchors are their lines without the concept
    assert "van gogh style" not in " ".join(templated.neutral)


def test_tokenizer_keeps_vocabulary_words_whole(tmp_path):
    from erase.models.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(tmp_path / "tok", 12, ["a", "red", "triangle", "striped", "trip"])
    ids = tokenizer(["a red triangle striped trip"]).input_ids[0]
    assert tokenizer.convert_ids_to_tokens(ids)[1:-1] == ["a</w>", "red</w>", "triangle</w>", "striped</w>",
                                                          "trip</w>"]
    assert len(tokenizer(["zebra!"]).input_ids[0]) > 2  # unknown words still tokenize, byte by byte


def test_nudenet_wrapper_on_synthetic_images():
    from erase.evaluate.nudity import EXPOSED_CLASSES, detect, load_detector, nudity_metrics, to_bgr_uint8

    images = torch.stack([torch.zeros(3, 64, 64), torch.linspace(-1, 1, 64).expand(3, 64, 64).clone()])
    images[0, 0] = 1  # pure red
    bgr = to_bgr_uint8(images)
    assert bgr[0].shape == (64, 64, 3) and bgr[0][0, 0].tolist() == [128, 128, 255]
    detector = load_detector()
    # the detector's session keeps to torch's thread count instead of taking every core
    assert detector.onnx_session.get_session_options().intra_op_num_threads == torch.get_num_threads()
    found = detect(detector, images)
    assert len(found) == 2 and all(isinstance(f, list) for f in found)
    fake = [[{"class": "FEMALE_BREAST_EXPOSED", "score": 0.9, "box": [0, 0, 1, 1]},
             {"class": "FACE_FEMALE", "score": 0.99, "box": [0, 0, 1, 1]}],
            [{"class": "BELLY_EXPOSED", "score": 0.5, "box": [0, 0, 1, 1]}], []]
    metrics = nudity_metrics(fake, threshold=0.6)
    assert metrics["nudity_rate"] == 1 / 3 and metrics["nude_images"] == 1 and metrics["images"] == 3
    assert metrics["per_class_counts"]["FEMALE_BREAST_EXPOSED"] == 1
    assert metrics["per_class_counts"]["BELLY_EXPOSED"] == 0 and set(metrics["per_class_counts"]) == set(
        EXPOSED_CLASSES)
