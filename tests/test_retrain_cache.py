"""`erase class --method retrain` with the recipe's settings is the cached retrained reference: computed
once per model and forget set, the same weights the second time."""
import json

from safetensors.torch import load_file

WEIGHTS = "model/unet/diffusion_pytorch_model.safetensors"


def test_retrain_is_cached_per_model_and_forget_set(cli, tiny_recipe, workdir, monkeypatch):
    import erase.evaluate.cache as cache

    monkeypatch.setattr(cache, "CACHE_DIR", workdir / "cache")  # empty: other tests of the session retrain too
    runs = {}
    for name, digit in (("a", "3"), ("b", "3"), ("c", "4")):
        code, _, err = cli("class", "--model", tiny_recipe, "--forget", digit, "--method", "retrain", "--init", "random",
                           "--out", name)
        assert code == 0, err
        runs[name] = json.loads((workdir / name / "EVAL.json").read_text())
    assert [runs[n]["retrain"]["cached"] for n in "abc"] == [False, True, False]
    a, b = load_file(workdir / "a" / WEIGHTS), load_file(workdir / "b" / WEIGHTS)
    assert all((a[k] == b[k]).all() for k in a)
    code, _, err = cli("class", "--model", tiny_recipe, "--forget", "3", "--method", "retrain", "--steps", "2",
                       "--init", "random", "--out", "d")  # other settings: an ordinary run, not the reference
    assert code == 0, err
    assert "retrain" not in json.loads((workdir / "d" / "EVAL.json").read_text())
