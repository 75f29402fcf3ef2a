"""Strict loading: missing, unexpected or mis-shaped tensors and corrupt files are clear errors."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from erase.errors import UserError
from erase.models.classifier import SmallCNN
from erase.models.io import load_strict

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture
def saved(tmp_path):
    model = SmallCNN(widths=(8, 16, 16))
    model.save_pretrained(tmp_path, safe_serialization=True)
    return tmp_path


def test_round_trip_is_exact(saved):
    model = load_strict(SmallCNN, saved)
    state = load_file(saved / WEIGHTS)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("change, words", [
    (lambda s: s.pop("head.bias"), "missing"),
    (lambda s: s.update({"extra.weight": torch.zeros(2)}), "unexpected"),
    (lambda s: s.update({"head.bias": torch.zeros(3)}), "mis-shaped"),
])
def test_bad_tensors_are_errors(saved, change, words):
    state = load_file(saved / WEIGHTS)
    change(state)
    save_file(state, saved / WEIGHTS)
    with pytest.raises(UserError, match=words):
        load_strict(SmallCNN, saved)


def test_truncated_file_is_an_error(saved):
    data = (saved / WEIGHTS).read_bytes()
    (saved / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_strict(SmallCNN, saved)


def test_pickle_weights_are_refused(tmp_path):
    SmallCNN().save_pretrained(tmp_path, safe_serialization=False)
    with pytest.raises(UserError, match="safetensors only"):
        load_strict(SmallCNN, tmp_path)
