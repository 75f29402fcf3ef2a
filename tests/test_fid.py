"""FID backends: a set against itself is ~0 and the distance grows with noise; names follow the backend."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from erase.config import PIPELINES_DIR
from erase.errors import UserError
from erase.evaluate import fid
from erase.models.classifier import SmallCNN
from erase.models.io import load_strict


@pytest.fixture(scope="module")
def probe():
    return load_strict(SmallCNN, PIPELINES_DIR / "digits-probe")


@pytest.fixture(scope="module")
def digits():
    from erase.data import load_world

    return load_world("digits", "all").images


def noisy(images, sigma):
    return (images + sigma * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)


class _FakeLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 8 * 8, 2048)

    def forward(self, x):
        return torch.tanh(self.proj(F.adaptive_avg_pool2d(x, 8).flatten(1)))


class _FakeInception(nn.Module):
    """The interface of clean-fid's torchscript Inception (`layers`, `return_features`), tiny and random."""

    def __init__(self):
        super().__init__()
        self.layers = _FakeLayers()

    def forward(self, x, return_features: bool = False):
        return self.layers((x - 128) / 128)  # pools to 8 x 8, so it takes any size (no resize needed)


@pytest.fixture
def fast_frechet(monkeypatch):
    """clean-fid's frechet_distance takes scipy's sqrtm of a 2048 x 2048 matrix (about 25 s on one core); the
    plumbing tests use the same distance from two symmetric eigendecompositions (tr sqrt(S1 S2) =
    tr sqrt(R S2 R) with R = S1^1/2 for covariance matrices; about 5 s). The real-weights test keeps clean-fid's."""
    import cleanfid.fid
    import numpy as np

    def frechet(mu1, sigma1, mu2, sigma2):
        s1, s2 = (torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in (sigma1, sigma2))
        w, v = torch.linalg.eigh(s1)
        root = (v * w.clamp_min(0).sqrt()) @ v.T
        trace_sqrt = torch.linalg.eigvalsh(root @ s2 @ root).clamp_min(0).sqrt().sum()
        diff = torch.as_tensor(np.asarray(mu1) - np.asarray(mu2), dtype=torch.float64)
        return float(diff @ diff + s1.trace() + s2.trace() - 2 * trace_sqrt)

    monkeypatch.setattr(cleanfid.fid, "frechet_distance", frechet)


@pytest.fixture(scope="module")
def fake_inception(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "fake-inception.pt"
    torch.jit.script(_FakeInception()).save(str(path))
    return path


def test_fid_probe_of_a_set_against_itself_is_zero_and_grows_with_noise(probe, digits):
    backend = fid.ProbeFid(probe)
    stats = backend.real_statistics(digits)
    scores = [backend.score(stats, noisy(digits, s))["fid_probe"] for s in (0.0, 0.1, 0.3)]
    assert abs(scores[0]) < 1e-3
    assert scores[0] < scores[1] < scores[2]
    assert backend.names == ("fid_probe",)


def test_clean_fid_plumbing_with_a_stand_in_network(fake_inception, fast_frechet, digits):
    """clean-fid's pipeline and our naming on a random network with Inception's interface."""
    clean = fid.CleanFid(fake_inception, "clean")
    assert clean.names == ("fid_clean", "kid")
    assert clean.features(digits[:3]).shape == (3, 2048)  # PIL bicubic to 299 x 299, as clean-fid's mode clean
    backend = fid.CleanFid(fake_inception, "legacy_tensorflow")
    assert backend.names == ("fid_legacy_tensorflow", "kid_legacy_tensorflow")
    real = digits[:200]
    stats = backend.real_statistics(real)
    same, far = (backend.score(stats, noisy(real, s)) for s in (0.0, 0.4))
    assert set(same) == set(backend.names)
    assert abs(same["fid_legacy_tensorflow"]) < 1e-2 * far["fid_legacy_tensorflow"]
    assert same["kid_legacy_tensorflow"] < far["kid_legacy_tensorflow"]


def test_clean_fid_with_real_inception_weights(monkeypatch, digits):
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    weights = fid.find_inception_weights()
    if weights is None:
        pytest.skip(f"clean-fid's Inception weights are not on this machine ({fid.clean_fid_cache_file()} or "
                    f"${fid.INCEPTION_ENV}) and cannot be downloaded here")
    backend = fid.CleanFid(weights)
    real = digits[:200]
    stats = backend.real_statistics(real)
    scores = [backend.score(stats, noisy(real, s))["fid_clean"] for s in (0.0, 0.2, 0.5)]
    assert abs(scores[0]) < 1e-2 * scores[1] and scores[1] < scores[2]


def test_backend_choice(monkeypatch, probe, fake_inception, tmp_path):
    from erase.evaluate import fid_weights

    monkeypatch.setattr(fid_weights, "clean_fid_cache_file", lambda: tmp_path / "absent.pt")
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    assert isinstance(fid.make_fid_backend(probe), fid.ProbeFid)
    assert fid.make_fid_backend(None) is None
    monkeypatch.setenv(fid.INCEPTION_ENV, str(fake_inception))
    assert fid.make_fid_backend(probe).names == ("fid_clean", "kid")
    monkeypatch.setenv(fid.INCEPTION_ENV, "none")
    assert isinstance(fid.make_fid_backend(probe), fid.ProbeFid)
    assert fid.make_fid_backend(probe, str(fake_inception)).names == ("fid_clean", "kid")
    with pytest.raises(UserError, match="does not exist"):
        fid.make_fid_backend(probe, str(tmp_path / "nothing.pt"))
    not_torchscript = tmp_path / "garbage.pt"
    not_torchscript.write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load Inception weights"):
        fid.make_fid_backend(probe, str(not_torchscript))


def _metrics(workdir):
    run = next((workdir / "runs").iterdir())
    return json.loads((run / "EVAL.json").read_text())["metrics"]


def test_eval_json_names_follow_the_backend(cli, tiny_recipe, workdir, fake_inception, fast_frechet):
    code, out, err = cli("class", "--model", tiny_recipe, "--forget", "3", "--method", "ga", "--init", "random",
                         "--steps", "1", "--inception-weights", fake_inception, "--fid-mode", "legacy_tensorflow")
    assert code == 0, err
    for which, metrics in _metrics(workdir).items():
        assert {"fid_legacy_tensorflow", "kid_legacy_tensorflow"} <= set(metrics), which
        assert "fid_probe" not in metrics and "fid_clean" not in metrics, which
        assert metrics["fid_backend"] == {"backend": "clean-fid", "mode": "legacy_tensorflow",
                                          "weights": str(fake_inception),
                                          "metrics": ["fid_legacy_tensorflow", "kid_legacy_tensorflow"]}
    assert "fid_legacy_tensorflow" in out


def test_eval_json_without_inception_has_fid_probe_only(cli, tiny_recipe, workdir):
    code, _, err = cli("class", "--model", tiny_recipe, "--forget", "3", "--method", "ga", "--init", "random",
                       "--steps", "1")
    assert code == 0, err
    for metrics in _metrics(workdir).values():
        assert "fid_probe" in metrics and not any(k.startswith(("fid_clean", "kid")) for k in metrics)
        assert metrics["fid_backend"]["backend"] == "torchmetrics"
