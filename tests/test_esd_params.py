"""ESD: the objective's target by hand, and the cross-attn / non-cross-attn selections by parameter name."""
import pytest
import torch

from erase.config import load_recipe
from erase.data import load_world
from erase.errors import UserError
from erase.methods import make_method
from erase.methods.conditioning import conditioning_names
from erase.models import load_generator
from erase.tasks.denoising import denoising_task


@pytest.fixture
def tiny_bundle(tiny_recipe):
    torch.manual_seed(0)
    return load_generator(load_recipe(str(tiny_recipe)), init="random")


def _selected(method, model):
    method.selection.prepare(model, None, None, method.objective, None)
    return {n for n, m in method.selection.masks.items() if m.all()}, {n for n, m in method.selection.masks.items()
                                                                      if not m.any()}


def test_class_conditional_unet_conditioning_path(tiny_bundle):
    model = tiny_bundle.denoiser
    names = {n for n, _ in model.named_parameters()}
    x_on, x_off = _selected(make_method("esd-x"), model)
    assert x_on | x_off == names
    assert "class_embedding.weight" in x_on
    assert all(n == "class_embedding.weight" or ".time_emb_proj." in n for n in x_on)
    assert any(".time_emb_proj." in n for n in x_on)
    u_on, u_off = _selected(make_method("esd-u"), model)
    assert not (u_on & x_on)  # disjoint from the conditioning path
    assert {n for n in u_off - x_on} == {n for n in names if n.startswith(("time_embedding.", "conv_out.",
                                                                          "conv_norm_out."))}
    assert make_method("esd").params == "non-cross-attn"


def test_cross_attention_models_select_attn2_by_name():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn1 = torch.nn.Linear(4, 4)
            self.attn2 = torch.nn.Linear(4, 4)
            self.ff = torch.nn.Linear(4, 4)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.time_embedding = torch.nn.Linear(4, 4)
            self.block = Block()
            self.conv_out = torch.nn.Linear(4, 4)

    model = Net()
    assert conditioning_names(model)[0] == ["block.attn2.weight", "block.attn2.bias"]
    x_on, _ = _selected(make_method("esd-x"), model)
    u_on, _ = _selected(make_method("esd-u"), model)
    assert x_on == {"block.attn2.weight", "block.attn2.bias"}
    assert u_on == {"block.attn1.weight", "block.attn1.bias", "block.ff.weight", "block.ff.bias"}


def test_models_without_conditioning_are_refused():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    for name in ("esd-x", "esd-u"):
        with pytest.raises(UserError, match="no cross-attention"):
            make_method(name).validate(model, None, None)


def test_esd_target_is_the_negatively_guided_reference(tiny_bundle):
    task = denoising_task(tiny_bundle)
    model = tiny_bundle.denoiser.eval()
    task.set_reference(model)
    data = load_world("digits", "train").of_classes([3])
    batch = {"x": torch.stack([data[i]["x"] for i in range(4)]), "label": torch.stack([data[i]["label"]
                                                                                      for i in range(4)])}
    # eta = -1 makes the target eps*(c) itself: zero loss while the model equals the reference
    torch.manual_seed(0)
    assert float(task.esd_loss(model, batch, eta=-1.0).detach().max()) < 1e-10
    # eta = 1: target 2 eps*(null) - eps*(c), so the loss is 4 |eps(c) - eps(null)|^2 > 0
    torch.manual_seed(0)
    x_t, t, _ = task.noised(batch)
    cond = task.adapter.condition(batch)
    with torch.no_grad():
        gap = (task.adapter.predict(model, x_t, t, cond)
               - task.adapter.predict(model, x_t, t, task.adapter.null_condition(cond)))
    torch.manual_seed(0)
    loss = task.esd_loss(model, batch, eta=1.0).detach()
    assert torch.allclose(loss, 4 * gap.pow(2).flatten(1).mean(1), rtol=1e-4, atol=1e-8)


def test_dit_conditioning_path_is_the_class_embedder_and_adaln():
    from diffusers import DiTTransformer2DModel

    model = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=1, out_channels=1,
                                  num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=10)
    x_on, _ = _selected(make_method("esd-x"), model)
    assert x_on == {"transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight",
                    "transformer_blocks.0.norm1.linear.weight", "transformer_blocks.0.norm1.linear.bias",
                    "proj_out_1.weight", "proj_out_1.bias"}
    u_on, _ = _selected(make_method("esd-u"), model)
    assert not (u_on & x_on)
    assert not any("timestep_embedder" in n or n.startswith("proj_out_2") for n in u_on)
    assert any(".attn1." in n for n in u_on)
