"""Parameter selection: SalUn's global top-fraction mask and the masked optimizer step."""
import torch

from erase.methods.selection import MaskedOptimizerStep, top_fraction_masks


def test_top_fraction_is_one_global_ranking():
    scores = {"a": torch.tensor([0.1, 5.0, 0.2, 0.3]), "b": torch.tensor([[4.0, 0.0], [3.0, 2.0]])}
    masks = top_fraction_masks(scores, 0.5)
    assert masks["a"].tolist() == [False, True, False, False]
    assert masks["b"].tolist() == [[True, False], [True, True]]
    total = sum(int(m.sum()) for m in masks.values())
    assert total == 4  # exactly half of the 8 entries


def test_top_fraction_keeps_requested_fraction_on_a_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Linear(5, 3))
    scores = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    for fraction in (0.1, 0.5, 0.9):
        masks = top_fraction_masks(scores, fraction)
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        assert kept == round(fraction * total)
        threshold = min(float(scores[n][m].min()) for n, m in masks.items() if m.any())
        assert all(float(scores[n][~m].max()) <= threshold for n, m in masks.items() if (~m).any())


def test_a_tiny_fraction_keeps_one_weight():
    scores = {"a": torch.tensor([0.1, 5.0, 0.2]), "b": torch.tensor([4.0])}
    masks = top_fraction_masks(scores, 1e-9)  # an allowed mask_ratio; round(1e-9 * 4) would keep nothing
    assert masks["a"].tolist() == [False, True, False] and masks["b"].tolist() == [False]


def test_a_selection_of_no_weight_is_one_clear_error():
    """fisher-saliency with a gamma no weight reaches would freeze every tensor: say so instead of crashing in
    the optimizer."""
    import pytest

    from erase.errors import UserError
    from erase.methods import make_method

    model = torch.nn.Linear(3, 2)
    method = make_method("ga", params="fisher-saliency", gamma=1000)
    method.selection.prepare = lambda *a: setattr(method.selection, "masks", {
        n: torch.zeros_like(p, dtype=torch.bool) for n, p in model.named_parameters()})
    with pytest.raises(UserError, match=r"params fisher-saliency selected no weight of this model \(gamma=1000.0"):
        method.prepare(model, None, None, None, 1)


def test_masked_weights_do_not_move_under_adam_with_weight_decay():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    masks = {"weight": torch.rand(3, 4) > 0.5, "bias": torch.tensor([True, False, True])}
    step = MaskedOptimizerStep(model, masks)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(5):
        model(torch.randn(8, 4)).pow(2).sum().backward()
        step(opt, clip=None)
    for name, p in model.named_parameters():
        frozen = ~masks[name]
        assert torch.equal(p[frozen], before[name][frozen])
        assert not torch.equal(p[masks[name]], before[name][masks[name]])
