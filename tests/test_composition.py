"""Composition: every update rule runs with every objective and every parameter selection its task defines,
on the denoising task (tiny class-conditional UNet) and the classification task, with no method-specific
code in either task."""
import pytest
import torch
from toy import run

from erase.config import load_recipe
from erase.data import load_world
from erase.errors import UserError
from erase.methods import make_method
from erase.methods.selection import selection_names
from erase.tasks.base import OBJECTIVES
from erase.tasks.classification import ClassificationTask
from erase.tasks.denoising import denoising_task

UPDATE_RULES = ["ga", "relabel", "salun", "sfron", "igs", "igs-explicit", "esd", "partial"]


@pytest.fixture(scope="module")
def digits():
    data = load_world("digits", "train")
    forget = data.subset(torch.isin(data.labels, torch.tensor([3])) & (torch.arange(len(data)) < 200))
    retain = data.subset(~torch.isin(data.labels, torch.tensor([3])) & (torch.arange(len(data)) < 40))
    return forget, retain


@pytest.fixture(scope="module")
def tiny_unet():
    import yaml
    from conftest import TINY_DDPM

    from erase.models import load_generator

    def build(tmp):
        path = tmp / "tiny.yaml"
        path.write_text(yaml.safe_dump(TINY_DDPM))
        torch.manual_seed(0)
        bundle = load_generator(load_recipe(str(path)), init="random")
        return bundle, denoising_task(bundle)

    return build


TEXT_TO_IMAGE_SELECTIONS = ("cross-attn-kv",)  # cross-attention key/value projections: no class-conditional UNet has them


def _cases():
    for method in UPDATE_RULES:
        for objective in OBJECTIVES:
            yield method, objective, None
        for params in selection_names():
            if params not in TEXT_TO_IMAGE_SELECTIONS:
                yield method, None, params


@pytest.mark.parametrize("params", TEXT_TO_IMAGE_SELECTIONS)
def test_text_to_image_selections_refuse_a_class_conditional_unet(params, digits, tiny_unet, tmp_path):
    bundle, _ = tiny_unet(tmp_path)
    with pytest.raises(UserError, match="text-to-image models only"):
        make_method("relabel", params=params).validate(bundle.denoiser, *digits)


@pytest.mark.parametrize("method, objective, params", list(_cases()))
def test_denoising_composes(method, objective, params, digits, tiny_unet, tmp_path):
    bundle, task = tiny_unet(tmp_path)
    m = make_method(method, objective=objective, params=params)
    task.check_objective(m.objective)
    m.validate(bundle.denoiser, *digits)
    result = run(m, bundle.denoiser, task, *digits, steps=2, lr=1e-3)
    assert len(result.history) == 2
    assert all(torch.isfinite(p).all() for p in bundle.denoiser.parameters())


def _classifier():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def _classifier_cases():
    for method in UPDATE_RULES:
        for objective in OBJECTIVES:
            yield method, objective, None
        for params in selection_names():
            yield method, None, params


@pytest.mark.parametrize("method, objective, params", list(_classifier_cases()))
def test_classification_composes_or_refuses_clearly(method, objective, params, digits):
    model, task = _classifier(), ClassificationTask(10)
    m = make_method(method, objective=objective, params=params)
    try:
        task.check_objective(m.objective)
        m.validate(model, *digits)
    except UserError as error:  # ESD needs a guided generator; conditioning selections need conditioning
        assert m.objective == "esd" or m.params in ("cross-attn", "non-cross-attn", "cross-attn-kv"), str(error)
        return
    result = run(m, model, task, *digits, steps=2, lr=1e-3)
    assert len(result.history) == 2


def test_list_shows_combinations_and_defaults(cli):
    code, out, _ = cli("list")
    assert code == 0
    for name in ("sfron", "igs", "igs-explicit", "esd-x", "esd-u", "partial"):
        assert f"  {name} " in out
    assert "forget_alpha=10.0" in out and "fraction=0.5" in out
    assert "classification                         ga, relabel, adaptive-ga" in out
    for name in selection_names():
        assert f"  {name} " in out


def test_a_recipe_can_choose_a_methods_objective_and_params(tmp_path):
    import yaml
    from conftest import TINY_DDPM

    from erase.runs.resolve import resolve_config

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_DDPM, "methods": {"sfron": {"objective": "relabel", "params": "all",
                                                                        "forget_alpha": 2.0}}}))
    config, _ = resolve_config("class", str(path), "sfron", ["3"])
    assert (config.objective, config.params, config.hyper["forget_alpha"]) == ("relabel", "all", 2.0)
    config, _ = resolve_config("class", str(path), "sfron", ["3"], objective="ga", params="saliency")
    assert (config.objective, config.params) == ("ga", "saliency")  # the command line wins
