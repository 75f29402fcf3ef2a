"""Methods with state (IGS multiplier, per-step masks, SFR-on's alpha schedule) resume bit for bit."""
import pytest
import torch

from erase.methods import make_method
from erase.train import Interrupted, TrainSettings, make_accelerator, unlearn
from toy import InterruptAfter, RegressionTask, toy_data, toy_model


def _run(method_args, checkpoint_dir=None, hooks=()):
    model = toy_model()
    settings = TrainSettings(steps=6, lr=0.05, batch_size=4, progress=False)
    unlearn(model, RegressionTask(), make_method(method_args[0], **method_args[1]), toy_data(8, 1), toy_data(8, 2),
            settings, checkpoint_dir=checkpoint_dir, accelerator=make_accelerator(), hooks=hooks)
    return model


@pytest.mark.parametrize("method_args", [
    ("sfron", {"objective": "relabel"}),
    ("igs", {"multiplier_lr": 0.5}),
    ("igs", {"form": "fast", "multiplier_lr": 0.5}),
    ("partial", {"partial_rule": "random"}),
], ids=["sfron", "igs", "igs-fast", "partial-random"])
def test_resumed_run_equals_unbroken_run(method_args, tmp_path):
    unbroken = _run(method_args)
    with pytest.raises(Interrupted):
        _run(method_args, tmp_path / "ck", hooks=(InterruptAfter(2),))  # checkpoint after step 3
    resumed = _run(method_args, tmp_path / "ck")
    for a, b in zip(unbroken.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
