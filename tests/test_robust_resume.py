"""`--robust K` resumes bit for bit: a run stopped (SIGTERM) mid-way and resumed ends with the weights, and every
logged loss, of an unbroken run. The inner attack's free class embedding and its Adam state are part of the
method's checkpoint; without them the first resumed step's attack would start again from the null class."""
from __future__ import annotations

import json
import os
import signal

import torch
from safetensors.torch import load_file

UNET = "model/unet/diffusion_pytorch_model.safetensors"
RUN = ["class", "--init", "random", "--forget", "3", "--method", "salun", "--robust", "2", "--steps", "6",
       "--checkpoint-every", "2", "--samples", "1", "--forget-samples", "2"]


def test_a_stopped_robust_run_resumes_to_the_unbroken_runs_weights(tiny_recipe, workdir, cli, monkeypatch):
    from erase.attacks.robust import RobustMethod

    assert cli(*RUN, "--model", tiny_recipe, "--out", "whole")[0] == 0
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
    assert free_at_stop is not None and not torch.equal(free_at_stop, start_of_attack(broken))  # it moved

    code, _, err = cli("class", "--resume", broken)
    assert code == 0, err
    whole, resumed = load_file(workdir / "whole" / UNET), load_file(broken / UNET)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    rows = [[json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
            for folder in (workdir / "whole", broken)]
    assert len(rows[1]) == 6 and rows[0] == rows[1]  # attack_loss of steps 4-6 included: the attack carried on


def saved_free(checkpoint):
    """The free embedding in a checkpoint's method state (accelerate's custom_checkpoint_*.pkl files)."""
    for path in sorted(checkpoint.glob("custom_checkpoint_*.pkl")):
        state = torch.load(path, weights_only=False)
        if isinstance(state, dict) and "free" in state:
            return state["free"]
    return None


def start_of_attack(run):
    """The free embedding's start: the null class's row of the run's original (seeded --init random)."""
    from erase.attacks.subjects import free_rows
    from erase.config import load_recipe
    from erase.models import load_generator

    torch.manual_seed(0)
    original = load_generator(load_recipe(str(run.parent / "tiny-ddpm.yaml")), init="random")
    return free_rows(original.denoiser, 1).detach()
