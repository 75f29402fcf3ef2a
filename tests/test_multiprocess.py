"""`accelerate launch --num_processes 2` on CPU (gloo): one run folder, written by the main process only."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_DDPM

ACCELERATE = Path(sys.executable).with_name("accelerate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not ACCELERATE.exists() and shutil.which("accelerate") is None, reason="accelerate CLI absent")
def test_two_processes_train_together_and_one_writes(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_DDPM))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [str(ACCELERATE if ACCELERATE.exists() else "accelerate"), "launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()),
               "-m", "erase", "class", "--model", "tiny.yaml", "--init", "random", "--forget", "3",
               "--method", "salun", "--checkpoint-every", "1", "--steps", "3"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs  # the main process named the folder and both processes used it
    report = json.loads((runs[0] / "EVAL.json").read_text())
    assert report["processes"] == 2
    steps = [json.loads(line)["step"] for line in (runs[0] / "history.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # one history, written once per step
    assert not (runs[0] / "checkpoints").exists()
    assert done.stdout.count("unlearned:") == 1  # one process reports
