"""SFR-on: Fisher-ratio mask, adaptive weights, cosine-decayed alpha, masked forget / full retain steps."""
import pytest
import torch

from erase.methods import make_method
from erase.methods.fisher import fisher_ratio_masks
from erase.methods.sfron import cosine_decay
from erase.tasks.base import adaptive_weights
from erase.train import make_accelerator
from toy import RegressionTask, as_batch, bind, prepare_data, toy_data, toy_model


def test_fisher_ratio_rule_by_hand():
    forget = {"w": torch.tensor([1.0, 0.0, 2.0, 3.0])}
    retain = {"w": torch.tensor([1.0, 0.0, 4.0, 1.0])}
    # 1/1 >= 1; 0/0 is (1e-15/1e-15) = 1 >= 1; 2/4 < 1; 3/1 >= 1
    assert fisher_ratio_masks(forget, retain, 1.0)["w"].tolist() == [True, True, False, True]
    assert fisher_ratio_masks(forget, retain, 2.0)["w"].tolist() == [False, False, False, True]


def test_fisher_saliency_mask_is_the_ratio_of_mean_squared_batch_gradients():
    model, task = toy_model(), RegressionTask()
    forget, retain = toy_data(8, 1, shift=2.0), toy_data(12, 2)
    method = make_method("sfron", gamma=1.5, fisher_clip=0)  # no per-batch clipping: plain Fisher
    method.prepare(model, task, prepare_data(forget, retain), make_accelerator(), total_steps=1)

    def fisher(batches):
        batches = list(batches)  # the same batches the selection saw (retain: seeded, shuffled)
        total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        for batch in batches:
            model.zero_grad()
            task.saliency_loss(model, batch).backward()
            for n, p in model.named_parameters():
                total[n] += p.grad ** 2
        return {n: t / len(batches) for n, t in total.items()}

    data = prepare_data(forget, retain)
    f, r = fisher(data.forget_batches()), fisher(data.retain_batches())
    for name, mask in method.selection.masks.items():
        expected = (f[name] + 1e-15) / (r[name] + 1e-15) >= 1.5
        assert torch.equal(mask, expected), name
    kept = sum(int(m.sum()) for m in method.selection.masks.values())
    assert 0 < kept < sum(m.numel() for m in method.selection.masks.values())


def test_adaptive_weights_sum_to_batch_size_and_favour_small_losses():
    losses = torch.tensor([1.0, 4.0, 0.25])
    weights = adaptive_weights(losses, 0.5)  # proportional to 1/sqrt(l) = 1, 0.5, 2
    assert torch.allclose(weights, torch.tensor([3 / 3.5, 1.5 / 3.5, 6 / 3.5]))
    assert float(weights.sum()) == pytest.approx(3.0)
    for power in (0.0, 1.0, 2.0):
        assert float(adaptive_weights(torch.rand(16) + 0.1, power).sum()) == pytest.approx(16.0)


def test_cosine_decay_of_forget_alpha():
    assert cosine_decay(10.0, 0, 100) == pytest.approx(10.0)
    assert cosine_decay(10.0, 50, 100) == pytest.approx(5.0)
    assert cosine_decay(10.0, 100, 100) == pytest.approx(0.0)


def _masked_method(model, retain_zero: bool):
    task = RegressionTask()
    if retain_zero:  # a retain loss with zero gradient isolates the forget step
        task.retain_loss = lambda m, b: 0.0 * m(b["x"]).sum()
    forget, retain = toy_data(8, 1, shift=2.0), toy_data(12, 2)
    method = make_method("sfron", objective="ga", decay_alpha=False)
    optimizer = bind(method, model, task, forget, retain)
    return method, task, optimizer, as_batch(forget[:4]), as_batch(retain[:4])


def test_forget_step_moves_only_masked_weights_and_retain_step_moves_all():
    model = toy_model()
    method, task, optimizer, fb, rb = _masked_method(model, retain_zero=True)
    masks = method.selection.masks
    assert any(not bool(m.all()) for m in masks.values())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    method.step(model, task, fb, rb, optimizer, 0)
    for name, p in model.named_parameters():
        assert torch.equal(p[~masks[name]], before[name][~masks[name]]), name
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())

    model = toy_model()  # same start; now the retain step is real and reaches the unmasked weights
    method, task, optimizer, fb, rb = _masked_method(model, retain_zero=False)
    method.step(model, task, fb, rb, optimizer, 0)
    moved_outside = sum(int((p[~method.selection.masks[n]] != before[n][~method.selection.masks[n]]).sum())
                        for n, p in model.named_parameters())
    assert moved_outside > 0
