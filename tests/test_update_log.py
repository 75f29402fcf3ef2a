"""Amnesiac update logs: layer-wise pruning, storage, and exact removal when batches do not interact."""
import torch
import torch.nn as nn

from erase.data.datasets import LabelledImages
from erase.methods import make_method
from erase.tasks.base import Task
from erase.train import TrainSettings, unlearn
from erase.update_log import UpdateLog, UpdateLogger, prune_layerwise


def test_prune_keeps_the_largest_fraction_of_each_tensor():
    delta = torch.tensor([[0.1, -5.0, 0.2, 3.0], [-0.3, 0.0, 4.0, -0.05]])
    kept = prune_layerwise(delta, 0.25)  # 2 of 8 entries
    assert kept["indices"].tolist() == [1, 6]
    assert kept["values"].tolist() == [-5.0, 4.0]
    assert prune_layerwise(delta, 1.0) is delta


class LinearScoreTask(Task):
    """Loss = minus the logit of the true class: its gradient does not depend on the weights, so the
    update of one batch is the same whatever other batches did (no interaction)."""

    name = "linear-score"

    def __init__(self, skip_ids=None):
        self.skip_ids = skip_ids

    def training_loss(self, model, batch):
        scores = model(batch["x"].flatten(1)).gather(1, batch["label"][:, None]).squeeze(1)
        if self.skip_ids is not None and bool(torch.isin(batch["index"], self.skip_ids).any()):
            return scores * 0.0  # "train without this batch": no gradient, no update (plain SGD)
        return -scores


def _data():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(24, 1, 2, 2, generator=g) * 2 - 1
    labels = torch.arange(24) % 3
    return LabelledImages(images, labels, ["a", "b", "c"])


def _train(task, hooks=()):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    settings = TrainSettings(steps=9, lr=0.1, batch_size=4, seed=3, optimizer="sgd", momentum=0.0, progress=False)
    unlearn(model, task, make_method("ft", clip=0), None, _data(), settings, hooks=hooks)
    return model


def test_amnesiac_with_full_updates_equals_training_without_those_batches(tmp_path):
    forget_ids = torch.tensor([5, 17])
    logger = UpdateLogger(forget_ids, keeps=[1.0], root=tmp_path)
    trained = _train(LinearScoreTask(), hooks=(logger,))
    reference = _train(LinearScoreTask(skip_ids=forget_ids))

    full = UpdateLog.find(trained, 1.0, str(tmp_path / next(p.name for p in tmp_path.iterdir())))
    assert 0 < len(full.batches_with(forget_ids)) < 9  # some batches held forget samples, not all
    assert len(full.missing(forget_ids)) == 0 and len(full.missing(torch.tensor([0]))) == 1
    report = full.subtract(trained, forget_ids)
    for a, b in zip(trained.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert report["subtracted_batches"] == len(full.batches_with(forget_ids))


def test_pruned_logs_store_less_and_subtract_only_the_kept_entries(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(64, 16)
    data = LabelledImages(torch.randn(32, 1, 8, 8), torch.arange(32) % 16, [str(i) for i in range(16)])
    logger = UpdateLogger(torch.arange(32), keeps=[1.0, 0.1], root=tmp_path)
    settings = TrainSettings(steps=3, lr=0.1, batch_size=8, optimizer="sgd", momentum=0.0, progress=False)
    unlearn(model, LinearScoreTask(), make_method("ft", clip=0), None, data, settings, hooks=(logger,))
    full, pruned = UpdateLog(logger.folders[1.0]), UpdateLog(logger.folders[0.1])
    assert pruned.record["storage_bytes"] < 0.4 * full.record["storage_bytes"]
    before = model.weight.detach().clone()
    pruned.subtract(model, torch.arange(32))
    changed = (model.weight != before).sum().item()
    assert 0 < changed <= 3 * 103  # at most ceil(0.1 * 1024) entries per logged step


def test_log_is_found_only_for_the_weights_it_was_recorded_for(tmp_path, monkeypatch):
    import pytest

    from erase.errors import UserError
    from erase.evaluate import cache

    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    model = _train(LinearScoreTask(), hooks=(UpdateLogger(torch.tensor([1]), keeps=[1.0]),))
    assert UpdateLog.find(model, 1.0).record["logged_ids"] == [1]
    with pytest.raises(UserError, match="keep=0.1.*keep-1"):
        UpdateLog.find(model, 0.1)
    with torch.no_grad():
        model.bias.add_(1.0)
    with pytest.raises(UserError, match="no update log"):
        UpdateLog.find(model, 1.0)
