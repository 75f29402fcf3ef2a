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
    """Evaluations of the same weights are shared within a test session, never across sessions. Under
    pytest-xdist the workers share one folder (their base temps' parent is this session's), so the t2i-shapes
    ESD test reuses the images and the original model's scores that the SalUn test computed before it."""
    import erase.evaluate.cache as cache

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    cache.CACHE_DIR = root / "erase-cache"
    cache.CACHE_DIR.mkdir(exist_ok=True)
    yield


# The order in which `pytest -n 2` hands tests out, longest first (CPU seconds on this 2-core machine, from
# `--durations`). xdist gives each worker two tests to start with (items 0-1 and 2-3), then the next test to
# whichever worker finishes one. So worker 1 spends the first ~3 minutes on the t2i SalUn test while worker 2
# runs the digits SalUn tests and sfron (~160 s), then the t2i ESD test: by then SalUn has generated the
# forget images and scored the original model, and ESD finds both in the shared cache.
SCHEDULE = ("test_shipped_t2i_shapes.py::test_erasing_triangle[salun]",  # ~200 s
            "test_notebook",  # after the t2i test, on its worker
            "test_shipped_salun.py::test_salun_forgets_digit_3_and_keeps_the_rest[ddpm-digits]",  # ~60 s
            "test_shipped_salun.py::test_salun_forgets_digit_3_and_keeps_the_rest[dit-digits]",  # ~35 s
            "test_shipped_methods.py::test_seed_method_forgets_digit_3_with_its_defaults[sfron]",  # ~60 s
            "test_shipped_t2i_shapes.py::test_erasing_triangle[esd]",
            "test_your_data.py::test_letters_chain", "test_shipped_methods", "test_resume.py", "test_multiprocess.py",
            "test_import.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        return next((i for i, part in enumerate(SCHEDULE) if part in item.nodeid), len(SCHEDULE))

    items.sort(key=rank)  # stable: the rest keep pytest's order
