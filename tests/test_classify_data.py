"""Forget sets, the CIFAR-10 reader (numpy-only unpickling) and ImageFolder reading."""
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from erase.data.forget import ForgetSpec, forget_mask, random_ids, spec_from_options
from erase.data.images import load_folder, load_numpy_pickle
from erase.errors import UserError

LABELS = torch.tensor([0, 1, 2, 3, 3, 1, 0, 3, 2, 1])


def _index(value):
    return int(value)


def test_forget_class_random_and_indices(tmp_path):
    assert forget_mask(ForgetSpec("class", "3"), LABELS, _index).nonzero().flatten().tolist() == [3, 4, 7]
    mask = forget_mask(ForgetSpec("random", "0.3", seed=5), LABELS, _index)
    assert int(mask.sum()) == 3
    assert torch.equal(mask, forget_mask(ForgetSpec("random", "0.3", seed=5), LABELS, _index))  # seeded
    assert not torch.equal(random_ids(1000, 0.1, 0), random_ids(1000, 0.1, 1))
    file = tmp_path / "ids.txt"
    file.write_text("# forget these\n2\n\n9\n2\n")
    assert forget_mask(ForgetSpec("indices", str(file)), LABELS, _index).nonzero().flatten().tolist() == [2, 9]


@pytest.mark.parametrize("spec, message", [
    (ForgetSpec("class", "5"), "no samples of class 5"),
    (ForgetSpec("random", "1.5"), "fraction in (0, 1)"),
    (ForgetSpec("random", "abc"), "fraction in (0, 1)"),
    (ForgetSpec("indices", "/nonexistent/ids.txt"), "does not exist"),
])
def test_bad_forget_sets(spec, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        forget_mask(spec, LABELS, _index)


def test_bad_index_files(tmp_path):
    for text, message in (("1\nx\n", "not a sample id"), ("10\n", "out of range"), ("# none\n", "names no samples")):
        file = tmp_path / "ids.txt"
        file.write_text(text)
        with pytest.raises(UserError, match=message):
            forget_mask(ForgetSpec("indices", str(file)), LABELS, _index)


def test_exactly_one_forget_option():
    with pytest.raises(UserError, match="nothing to forget"):
        spec_from_options(None, None, None, 0)
    with pytest.raises(UserError, match="exactly one"):
        spec_from_options("3", "0.1", None, 0)


def write_fake_cifar(folder, per_batch=4, protocol=2):
    """CIFAR-10 python batches with the real layout: dict of bytes keys, uint8 (N, 3072), list labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [b"x.png"] * per_batch}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_batches_read_without_unpickling_objects(tmp_path, protocol):
    root = write_fake_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    train, test = load_folder(tmp_path, 32, 3)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert len(test) == 4 and train.class_names[3] == "cat"
    first = pickle.loads((root / "data_batch_1").read_bytes())
    assert torch.equal(train.images[0], torch.from_numpy(first[b"data"][0].reshape(3, 32, 32)))
    item = train[0]
    assert item["x"].dtype == torch.float32 and -1 <= float(item["x"].min()) and float(item["x"].max()) <= 1


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_fake_cifar(tmp_path / "data")
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": _Exploit()}, protocol=2))
    with pytest.raises(UserError, match=r"data_batch_3.*refusing to load"):
        load_folder(root, 32, 3)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UserError, match="refusing"):
        load_numpy_pickle(root / "data_batch_3")


def _image_folder(root, classes=("cat", "dog"), per_class=5, size=20):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (size, size), (40 * c, 10 * i, 0)).save(root / name / f"{i}.png")
    return root


def test_image_folder_split_and_train_test_layout(tmp_path):
    train, test = load_folder(_image_folder(tmp_path / "flat"), 16, 1)
    assert (len(train), len(test)) == (8, 2) and train.images.shape[1:] == (1, 16, 16)
    assert train.class_names == ["cat", "dog"] and sorted(test.labels.tolist()) == [0, 1]
    _image_folder(tmp_path / "split" / "train")
    _image_folder(tmp_path / "split" / "test", per_class=2)
    train, test = load_folder(tmp_path / "split", 32, 3)
    assert (len(train), len(test)) == (10, 4) and train.images.shape[1:] == (3, 32, 32)


def test_image_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no images"):
        load_folder(tmp_path / "empty", 16, 1)
    root = _image_folder(tmp_path / "bad")
    (root / "dog" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"cannot read image .*broken\.png"):
        load_folder(root, 16, 1)
    with pytest.raises(UserError, match="does not exist"):
        load_folder(tmp_path / "missing", 16, 1)
    write_fake_cifar(tmp_path / "cifar")
    with pytest.raises(UserError, match="CIFAR-10"):
        load_folder(tmp_path / "cifar", 16, 1)
