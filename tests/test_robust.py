"""`--robust K` (erase/attacks/robust.py): each step is taken under the plain and the attacked class embedding, the
saved model keeps nothing of the attack, `erase compare` labels the run, bad values are refused; and a run stopped
(SIGTERM) mid-way and resumed ends with the weights, and every logged loss, of an unbroken run. The inner attack's
free class embedding and its Adam state are part of the method's checkpoint; without them the first resumed step's
attack would start again from the null class."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import TINY_DDPM, files_under

UNET = "model/unet/diffusion_pytorch_model.safetensors"
STEPS = 6
RUN = ["class", "--init", "random", "--forget", "3", "--method", "salun", "--robust", "2", "--steps", str(STEPS),
       "--checkpoint-every", "2", "--samples", "1", "--forget-samples", "2"]


@pytest.fixture(scope="module")
def robust_run(tmp_path_factory):
    """One unbroken tiny --robust 2 run, shared by the tests below."""
    from erase.cli import main

    root = tmp_path_factory.mktemp("robust")
    (root / "tiny-ddpm.yaml").write_text(yaml.safe_dump(TINY_DDPM))
    assert main([*RUN, "--model", str(root / "tiny-ddpm.yaml"), "--out", str(root / "whole")]) == 0
    return root / "whole"


def test_robust_unlearning_takes_each_step_under_the_attacked_embedding_too(robust_run, workdir, cli):
    """The history logs the inner attack and the attacked step; the saved model has the plain embedding table
    (nothing of the attack is left in it); compare labels the run."""
    history = [json.loads(line) for line in (robust_run / "history.jsonl").read_text().splitlines()]
    assert len(history) == STEPS
    assert {"forget_loss", "attacked_forget_loss", "attack_loss"} <= set(history[0])
    report = json.loads((robust_run / "EVAL.json").read_text())
    assert report["method_report"]["robust"] == {"inner_steps": 2, "inner_lr": 0.05}
    weights = load_file(str(robust_run / UNET))
    assert "class_embedding.weight" in weights and not any("free" in k for k in weights)
    assert not (robust_run / "checkpoints").exists()  # a finished run keeps no checkpoint
    assert cli("compare", robust_run, "--out", "cmp")[0] == 0
    assert "| salun +robust 2 |" in (workdir / "cmp" / "compare.md").read_text()


@pytest.mark.parametrize("robust, method, words", [("0", "salun", "--robust must be a positive number, got 0"),
                                                   ("2", "ft", "ft does not use forget data")])
def test_robust_refusals(tiny_recipe, workdir, cli, robust, method, words):
    before = files_under(workdir)
    code, _, err = cli("class", "--model", tiny_recipe, "--forget", "3", "--init", "random", "--robust", robust,
                       "--method", method, "--out", "X")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert files_under(workdir) == before


def test_a_stopped_robust_run_resumes_to_the_unbroken_runs_weights(robust_run, tiny_recipe, workdir, cli,
                                                                   monkeypatch):
    from erase.attacks.robust import RobustMethod

    step = RobustMethod.step

    def stopped_after_step_three(self, model, task, forget_batch, retain_batch, optimizer, index):
        losses = step(self, model, task, forget_batch, retain_batch, optimizer, index)
        if index == 2:  # as `kill -TERM` would: the loop checkpoints after this step and stops
            os.kill(os.getpid(), signal.SIGTERM)
        return losses

    with monkeypatch.context() as patched:
        patched.setattr(RobustMethod, "step", stopped_after_step_three)
        code, _, err = cli(*RUN, "--model", tiny_recipe, "--out", "broken")
    assert code == 143 and "--resume" in err, err
    broken = workdir / "broken"
    assert [p.name for p in (broken / "checkpoints").glob("step-*")] == ["step-3"]

    free_at_stop = saved_free(broken / "checkpoints" / "step-3")
    assert free_at_stop is not None and not torch.equal(free_at_stop, start_of_attack(tiny_recipe))  # it moved

    code, _, err = cli("class", "--resume", broken)
    assert code == 0, err
    whole, resumed = load_file(robust_run / UNET), load_file(broken / UNET)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    rows = [[json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
            for folder in (robust_run, broken)]
    assert len(rows[1]) == STEPS and rows[0] == rows[1]  # attack_loss of steps 4-6 included: the attack carried on


def saved_free(checkpoint):
    """The free embedding in a checkpoint's method state (accelerate's custom_checkpoint_*.pkl files)."""
    for path in sorted(checkpoint.glob("custom_checkpoint_*.pkl")):
        state = torch.load(path, weights_only=False)
        if isinstance(state, dict) and "free" in state:
            return state["free"]
    return None


def start_of_attack(recipe):
    """The free embedding's start: the null class's row of the run's original (seeded --init random)."""
    from erase.attacks.subjects import free_rows
    from erase.config import load_recipe
    from erase.models import load_generator

    torch.manual_seed(0)
    original = load_generator(load_recipe(str(recipe)), init="random")
    return free_rows(original.denoiser, 1).detach()
