import torch

from erase.data import load_world, split_by_classes


def test_digits_split_shapes_and_range():
    train, test = load_world("digits", "train"), load_world("digits", "test")
    assert train.images.shape == (1437, 1, 16, 16) and test.images.shape == (360, 1, 16, 16)
    assert train.images.min() >= -1 and train.images.max() <= 1
    assert set(train.labels.tolist()) == set(range(10))
    # fixed split: no image is in both
    all_images = load_world("digits", "all").images
    assert len(all_images) == 1797


def test_split_by_classes_partitions_the_data():
    data = load_world("digits", "train")
    forget, retain = split_by_classes(data, [3])
    assert len(forget) + len(retain) == len(data)
    assert (forget.labels == 3).all() and not (retain.labels == 3).any()


def test_split_is_deterministic():
    a, b = load_world("digits", "test"), load_world("digits", "test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
