"""Tiny end-to-end `erase classify` runs: every registered method, the cached retrained reference,
the retrain method as an exact reference, and bad input refused before anything is written."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from erase.cli import main
from erase.methods import method_class, method_names
from erase.tasks.classification import ClassificationTask

TINY_CNN = {
    "name": "tiny-cnn", "family": "classifier", "world": "digits", "weights": "tiny-cnn",
    "resolution": 16, "channels": 1, "num_classes": 10, "class_names": [str(i) for i in range(10)],
    "architecture": {"type": "small-cnn", "widths": [4, 8], "dropout": 0.0},
    "train": {"augment": "none"},
    "unlearn": {"steps": 2, "lr": 1e-3, "batch_size": 16, "optimizer": "adam"},
    "methods": {"amnesiac": {"steps": 1}, "partial-amnesiac": {"steps": 0}},
    "evaluate": {"batch_size": 512},
    "pretrain": {"seed": 0, "steps": 6, "batch_size": 32, "lr": 0.01, "optimizer": "adam"},
}


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory) -> Path:
    """A tiny classifier pretrained once (with update logs of class 3 at keep 1 and 0.1)."""
    folder = tmp_path_factory.mktemp("tiny-cnn")
    recipe = folder / "tiny-cnn.yaml"
    recipe.write_text(yaml.safe_dump(TINY_CNN))
    code = main(["pretrain", str(recipe), "--log-updates", "--log-classes", "3", "--log-keep", "1",
                 "--log-keep", "0.1"])
    assert code == 0
    return recipe


def _report(folder: Path) -> dict:
    return json.loads((folder / "EVAL.json").read_text())


@pytest.mark.parametrize("method", method_names())
def test_every_method_runs_on_a_classifier(method, tiny_cnn, cli, workdir):
    objective = method_class(method).objective
    code, out, err = cli("classify", "--model", tiny_cnn, "--forget-class", "3", "--method", method,
                         "--out", "run")
    if objective is not None and objective not in ClassificationTask.objectives:
        assert code == 2 and "not defined for the classification task" in err
        assert not (workdir / "run").exists()
        return
    if method in ("uce", "ca", "fmn"):  # the text-to-image baselines read or edit cross-attention
        assert code == 2 and "cross-attention" in err, err
        assert not (workdir / "run").exists()
        return
    assert code == 0, err
    report = _report(workdir / "run")
    assert report["method"] == method and report["target"]["name"] == "3"
    for name in ("original", "unlearned", "retrained"):
        metrics = report["metrics"][name]
        for key in ("unlearning_accuracy", "retained_accuracy", "test_accuracy", "mia_efficacy"):
            assert 0 <= metrics[key] <= 1, (name, key)
        assert metrics["forget_samples"] == 146 and metrics["test_samples"] == 323  # test without class 3
    assert report["metrics"]["unlearned"]["gap_to_retrain"]["avg_gap"] == report["avg_gap"]
    assert report["metrics"]["unlearned"]["run_time_seconds"] >= 0
    for name in ("config.yaml", "SUMMARY.md", "model/config.json", "model/erase_recipe.yaml"):
        assert (workdir / "run" / name).is_file(), name
    assert "avg gap" in out


def test_amnesiac_with_full_logs_and_no_fine_tuning_returns_to_the_initial_weights(tiny_cnn, cli, workdir):
    # every training batch of 32 holds a 3, so subtracting all their updates undoes all of training
    code, _, err = cli("classify", "--model", tiny_cnn, "--forget-class", "3", "--method", "amnesiac",
                       "--steps", "0", "--out", "run")
    assert code == 0, err
    report = _report(workdir / "run")
    assert report["method_report"]["subtracted_batches"] == report["method_report"]["logged_batches"] == 6
    from erase.config import load_recipe
    from erase.models.classifier import build_classifier, load

    torch.manual_seed(0)
    initial = build_classifier(load_recipe(str(tiny_cnn)))
    unlearned = load(load_recipe(str(workdir / "run" / "model")), workdir / "run" / "model").model
    for a, b in zip(initial.parameters(), unlearned.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    code, _, err = cli("classify", "--model", tiny_cnn, "--forget-random", "0.1", "--method", "amnesiac",
                       "--out", "other")
    assert code == 2 and "were not logged" in err and not (workdir / "other").exists()


def test_retrained_reference_is_cached(tiny_cnn, cli, workdir, monkeypatch):
    assert cli("classify", "--model", tiny_cnn, "--forget-indices", _ids(workdir), "--method", "ft",
               "--out", "a")[0] == 0
    first = _report(workdir / "a")
    assert first["retrain"]["cached"] is False

    import erase.runs.reference

    def no_training(*args, **kwargs):
        raise AssertionError("the retrained reference was computed again")

    monkeypatch.setattr(erase.runs.reference, "unlearn", no_training)
    code, _, err = cli("classify", "--model", tiny_cnn, "--forget-indices", _ids(workdir), "--method", "ga",
                       "--out", "b")
    assert code == 0, err
    second = _report(workdir / "b")
    assert second["retrain"]["cached"] is True
    assert second["metrics"]["retrained"] == first["metrics"]["retrained"]


def test_an_interrupted_classify_run_resumes(tiny_cnn, cli, workdir):
    args = ("classify", "--model", tiny_cnn, "--forget-class", "3", "--method", "relabel", "--steps", "3")
    assert cli(*args, "--out", "whole")[0] == 0
    assert cli(*args, "--out", "cut", "--checkpoint-every", "2", "--keep-checkpoints")[0] == 0
    (workdir / "cut" / "EVAL.json").unlink()  # as if it had stopped after the step-2 checkpoint
    for step in (workdir / "cut" / "checkpoints").iterdir():
        assert step.name == "step-2"
    code, _, err = cli("classify", "--resume", "cut")
    assert code == 0, err
    assert _report(workdir / "cut")["metrics"]["unlearned"]["retained_accuracy"] == \
        _report(workdir / "whole")["metrics"]["unlearned"]["retained_accuracy"]


def _ids(workdir: Path) -> str:
    path = workdir / "ids.txt"
    path.write_text("\n".join(str(i) for i in range(0, 1400, 37)))
    return str(path)


def test_retrain_method_reproduces_pretraining_when_nothing_is_forgotten(tiny_cnn):
    from erase.config import load_recipe
    from erase.data import load_world
    from erase.methods import make_method
    from erase.models.classifier import load
    from erase.runs.reference import retrain_config
    from erase.runs.resolve import train_settings
    from erase.tasks.classification import classification_task
    from erase.train import unlearn

    recipe = load_recipe(str(tiny_cnn))
    shipped = load(recipe, recipe.weights_dir).model
    model = load(recipe, recipe.weights_dir).model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # whatever the starting weights, retrain starts from the seeded initialisation
    settings = train_settings(retrain_config(str(tiny_cnn), 0))
    settings.progress = False
    unlearn(model, classification_task(recipe), make_method("retrain"), None, load_world("digits", "train"),
            settings)
    for (name, a), b in zip(shipped.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def test_retrain_takes_the_pretrain_recipe_for_generators_too(tiny_recipe):
    from diffusers import UNet2DModel

    from erase.config import load_recipe
    from erase.methods.retrain import reinitialise
    from erase.models.ddpm import build_unet
    from erase.runs.resolve import resolve_config

    config, _ = resolve_config("class", str(tiny_recipe), "retrain", ["3"])
    assert (config.steps, config.lr, config.batch_size) == (4, 1e-3, 8)
    config, _ = resolve_config("class", "ddpm-digits", "retrain", ["3"])
    assert (config.steps, config.training["ema_decay"], config.training["lr_schedule"]) == (3000, 0.999, "cosine")
    recipe = load_recipe(str(tiny_recipe))
    torch.manual_seed(0)
    fresh = build_unet(recipe)
    other = UNet2DModel.from_config(fresh.config)  # different random weights
    reinitialise(other, 0)
    for a, b in zip(fresh.parameters(), other.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("args, message", [
    ([], "nothing to forget"),
    (["--forget-class", "3", "--forget-random", "0.1"], "exactly one"),
    (["--forget-class", "12"], "out of range"),
    (["--forget-random", "1.5"], "fraction"),
    (["--forget-indices", "missing.txt"], "does not exist"),
    (["--forget-class", "3", "--method", "salun", "--objective", "esd"], "not defined for the classification"),
    (["--forget-class", "3", "--method", "esd-x"], "not defined for the classification"),
    (["--forget-class", "3", "--method", "igs", "--params", "cross-attn"], "no cross-attention"),
    (["--forget-class", "3", "--weights", "no-such-folder"], "no weights at no-such-folder"),
    (["--forget-class", "3", "--data", "no-such-data"], "no data at no-such-data"),
    (["--forget-class", "3", "--method", "nope"], "unknown method"),
    (["--forget-class", "3", "--method", "partial-amnesiac", "--set", "keep=0.3"], "no update log with keep=0.3"),
    (["--forget-class", "3", "--steps", "0"], "--steps must be a positive number"),
])
def test_bad_input_exits_2_and_writes_nothing(args, message, tiny_cnn, cli, workdir):
    code, _, err = cli("classify", "--model", tiny_cnn, *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (workdir / "runs").exists()


def test_generators_and_classifiers_are_not_mixed_up(tiny_cnn, cli, workdir):
    code, _, err = cli("classify", "--model", "ddpm-digits", "--forget-class", "3")
    assert code == 2 and "use `python -m erase class" in err
    code, _, err = cli("class", "--model", tiny_cnn, "--forget", "3")
    assert code == 2 and "is a classifier" in err
    code, _, err = cli("classify", "--model", "resnet18-cifar10", "--forget-class", "3")
    assert code == 2 and "no data at" in err
    assert not (workdir / "runs").exists()


def test_resnet18_cifar10_saves_loads_and_unlearns_on_a_cifar_folder(cli, workdir):
    from erase.config import PIPELINES_DIR, load_recipe
    from erase.models.classifier import ResNet18Cifar, load
    from tests.test_classify_data import write_fake_cifar

    recipe = yaml.safe_load((PIPELINES_DIR / "resnet18-cifar10.yaml").read_text())
    tiny = {"steps": 1, "lr": 0.01, "batch_size": 2, "optimizer": "sgd"}
    recipe.update(weights="weights", data=None, unlearn=tiny, methods={}, pretrain={"seed": 0, **tiny})
    (workdir / "r18.yaml").write_text(yaml.safe_dump(recipe))
    data = write_fake_cifar(workdir / "cifar", per_batch=2)  # 10 training and 2 test images
    code, _, err = cli("pretrain", "r18.yaml", "--data", data, "--out", "w")
    assert code == 0, err
    model = load(load_recipe("w"), workdir / "w").model
    assert isinstance(model, ResNet18Cifar) and model.net.maxpool.__class__.__name__ == "Identity"
    assert model.net.conv1.kernel_size == (3, 3) and model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    code, out, err = cli("classify", "--model", "w", "--data", data, "--forget-random", "0.2", "--method", "ga",
                         "--out", "run")
    assert code == 0, err
    report = _report(workdir / "run")
    assert report["metrics"]["unlearned"]["forget_samples"] == 2 and report["data"] == str(data)
