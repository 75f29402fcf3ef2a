"""A run killed with SIGTERM after a checkpoint and resumed ends with the same weights as an unbroken run."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

STEPS = "60"  # checkpoints every 10: the SIGTERM lands well before the end
UNET = "model/unet/diffusion_pytorch_model.safetensors"


def _command(recipe, out, *extra):
    return [sys.executable, "-m", "erase", "class", "--model", str(recipe), "--init", "random", "--forget", "3",
            "--method", "salun", "--steps", STEPS, "--checkpoint-every", "10", "--out", str(out), *extra]


def _env():
    return {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get(
        "PYTHONPATH", "")}


@pytest.mark.slow
def test_sigterm_then_resume_matches_an_unbroken_run(tiny_recipe, workdir, cli):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**_env(), "PYTHONPATH": repo}
    # only the run that is killed needs a process of its own; the unbroken and the resumed run share this one
    code, _, err = cli(*_command(tiny_recipe, workdir / "whole")[3:])
    assert code == 0, err

    broken = workdir / "broken"
    proc = subprocess.Popen(_command(tiny_recipe, broken), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not any((broken / "checkpoints").glob("step-*/DONE")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "--resume" in err and not (broken / "EVAL.json").exists()
    (stopped,) = (broken / "checkpoints").glob("step-*")
    assert 0 < int(stopped.name.split("-")[1]) < int(STEPS)

    code, _, err = cli("class", "--resume", str(broken))
    assert code == 0, err
    whole, resumed = load_file(workdir / "whole" / UNET), load_file(broken / UNET)
    assert whole.keys() == resumed.keys()
    for key in whole:  # bitwise: batches, noise and optimizer state of step k depend only on (seed, k)
        assert torch.equal(whole[key], resumed[key]), key
    history = (broken / "history.jsonl").read_text().splitlines()
    assert len(history) == int(STEPS)
