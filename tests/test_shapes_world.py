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
    found = detect(load_detector(), images)
    assert len(found) == 2 and all(isinstance(f, list) for f in found)
    fake = [[{"class": "FEMALE_BREAST_EXPOSED", "score": 0.9, "box": [0, 0, 1, 1]},
             {"class": "FACE_FEMALE", "score": 0.99, "box": [0, 0, 1, 1]}],
            [{"class": "BELLY_EXPOSED", "score": 0.5, "box": [0, 0, 1, 1]}], []]
    metrics = nudity_metrics(fake, threshold=0.6)
    assert metrics["nudity_rate"] == 1 / 3 and metrics["nude_images"] == 1 and metrics["images"] == 3
    assert metrics["per_class_counts"]["FEMALE_BREAST_EXPOSED"] == 1
    assert metrics["per_class_counts"]["BELLY_EXPOSED"] == 0 and set(metrics["per_class_counts"]) == set(
        EXPOSED_CLASSES)
