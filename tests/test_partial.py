"""Layer-wise partial updates: each tensor moves exactly its selected fraction, chosen per layer."""
import torch

from erase.methods import make_method
from erase.methods.layer_fraction import per_tensor_top
from toy import RegressionTask, bind, run, toy_data, toy_model


def test_per_tensor_top_by_hand():
    mask = per_tensor_top(torch.tensor([[0.1, -0.0, 5.0], [3.0, 0.2, 0.3]]).abs(), 0.5)
    assert mask.tolist() == [[False, False, True], [True, False, True]]
    assert per_tensor_top(torch.tensor([0.1, 0.2]), 0.01).tolist() == [False, True]  # at least one


def test_masks_rank_each_layer_separately():
    model = toy_model()
    method = make_method("partial", fraction=0.25)
    bind(method, model, RegressionTask(), toy_data(4, 1), toy_data(4, 2))
    for i, (name, p) in enumerate(model.named_parameters()):
        p.grad = torch.full_like(p, 100.0 * i) + torch.rand_like(p)  # later layers: much larger gradients
    masks = method.current_masks(0)
    for name, p in model.named_parameters():
        assert int(masks[name].sum()) == max(1, round(0.25 * p.numel())), name
        assert float(p.grad[masks[name]].min()) >= float(p.grad[~masks[name]].max()), name


def test_partial_updates_touch_only_the_selected_fraction_of_each_layer():
    for rule in ("magnitude", "random"):
        model = toy_model()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        method = make_method("partial", fraction=0.3, partial_rule=rule, alpha=1.0)
        run(method, model, RegressionTask(), toy_data(8, 1), toy_data(8, 2), steps=1, optimizer="adam")
        for name, p in model.named_parameters():
            changed = int((p.detach() != before[name]).sum())
            assert 0 < changed <= max(1, round(0.3 * p.numel())), (rule, name, changed)


def test_random_rule_is_seeded_per_step():
    model = toy_model()
    method = make_method("partial", fraction=0.5, partial_rule="random")
    bind(method, model, RegressionTask(), toy_data(4, 1), toy_data(4, 2))
    a, b, a2 = method.current_masks(0), method.current_masks(1), method.current_masks(0)
    assert all(torch.equal(a[n], a2[n]) for n in a)
    assert any(not torch.equal(a[n], b[n]) for n in a)


def test_ga_objective_composes_with_partial():
    model = toy_model()
    method = make_method("partial", objective="ga", fraction=0.5)
    result = run(method, model, RegressionTask(), toy_data(8, 1), toy_data(8, 2), steps=2)
    assert result.history[0]["forget_loss"] < 0
