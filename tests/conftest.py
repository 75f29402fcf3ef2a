"""Shared fixtures: tiny recipes (two-block UNets, 16x16, a few steps) and an in-process CLI runner."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("ERASE_INCEPTION", "none")  # fid_probe unless a test asks for clean-fid

from erase.cli import main  # noqa: E402
from erase.config import PIPELINES_DIR  # noqa: E402

TINY_DDPM = {
    "name": "tiny-ddpm",
    "family": "ddpm",
    "world": "digits",
    "weights": None,
    "probe": str(PIPELINES_DIR / "digits-probe"),
    "resolution": 16,
    "channels": 1,
    "num_classes": 10,
    "class_names": [str(i) for i in range(10)],
    "architecture": {
        "block_out_channels": [8, 16],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "UpBlock2D"],
        "norm_num_groups": 4,
    },
    "scheduler": {"num_train_timesteps": 100, "beta_schedule": "linear"},
    "sampling": {"num_inference_steps": 2, "guidance_scale": 2.0},
    "train": {"cond_drop": 0.1, "saliency_guidance": 2.0},
    "unlearn": {"steps": 3, "lr": 1e-3, "batch_size": 8},
    "evaluate": {"samples_per_class": 3, "forget_samples": 4, "grid_per_class": 2, "batch_size": 64},
    "pretrain": {"steps": 4, "batch_size": 8, "lr": 1e-3, "probe": {"steps": 2, "batch_size": 8}},
}


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run every CLI call from an empty folder so runs/ lands in the test's tmp dir."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_recipe(workdir) -> Path:
    path = workdir / "tiny-ddpm.yaml"
    path.write_text(yaml.safe_dump(TINY_DDPM))
    return path


@pytest.fixture
def cli(capsys):
    """Call the CLI in-process; returns (exit code, stdout, stderr)."""

    def run(*argv: str):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """Evaluations of the same weights are shared within a test session, never across sessions."""
    import erase.evaluate.cache as cache

    cache.CACHE_DIR = tmp_path_factory.mktemp("erase-cache")
    yield


# The longest modules first, so that under `pytest -n 2` the two workers start on them and the short tests fill
# the gaps (the order only moves whole modules; within a module pytest's order stays).
LONGEST_FIRST = ("test_shipped_t2i_shapes", "test_shipped_salun", "test_your_data", "test_shipped_methods",
                 "test_notebook", "test_resume", "test_multiprocess", "test_import")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.stem
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable
    if os.environ.get("PYTEST_XDIST_WORKER") and len(items) > 2:
        # xdist hands each worker two consecutive tests to start with: one of the two longest each
        items[1], items[2] = items[2], items[1]
