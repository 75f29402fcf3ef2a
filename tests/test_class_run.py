"""Tiny end-to-end `erase class` runs: run-folder contents, EVAL.json shape, reload and sample."""
import json

import torch

from erase.models.pipeline import ClassConditionalPipeline


def _run_folder(workdir):
    runs = list((workdir / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_tiny_class_run_writes_a_complete_run_folder(cli, tiny_recipe, workdir):
    code, out, err = cli("class", "--model", tiny_recipe, "--forget", "3", "--method", "salun",
                         "--init", "random", "--steps", "3")
    assert code == 0, err
    run = _run_folder(workdir)
    for name in ("config.yaml", "EVAL.json", "SUMMARY.md", "history.jsonl", "grids/before.png",
                 "grids/after.png", "grids/before_after.png", "model/model_index.json",
                 "model/unet/diffusion_pytorch_model.safetensors", "model/erase_recipe.yaml"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoints").exists()
    report = json.loads((run / "EVAL.json").read_text())
    assert report["model"] == str(tiny_recipe) and report["method"] == "salun"
    assert report["target"] == {"kind": "class", "value": 3, "name": "3"}
    assert report["steps"] == 3 and report["seed"] == 0
    assert set(report["seconds"]) >= {"unlearn", "evaluate", "total"}
    for which in ("original", "unlearned"):
        metrics = report["metrics"][which]
        assert 0 <= metrics["unlearning_accuracy"] <= 1
        assert 0 <= metrics["retained_accuracy"] <= 1
        assert set(metrics["per_class_accuracy"]) == {str(i) for i in range(10)}
        assert metrics["forget_samples"] == 4
        assert metrics["fid_probe"] >= 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3]
    assert "run folder:" in out and "unlearning accuracy" in out


def test_saved_model_reloads_and_samples(cli, tiny_recipe, workdir):
    assert cli("class", "--model", tiny_recipe, "--forget", "0", "--method", "ga", "--init", "random",
               "--steps", "2")[0] == 0
    model = _run_folder(workdir) / "model"
    # through diffusers' own loader ...
    pipe = ClassConditionalPipeline.from_pretrained(model)
    images = pipe(class_labels=[1, 2], num_inference_steps=2, output_type="pt",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (2, 1, 16, 16)
    # ... and as --model for erase again
    code, out, err = cli("sample", "--model", model, "--classes", "0-2", "--per-class", "2", "--out", "g.png")
    assert code == 0, err
    assert (workdir / "g.png").is_file()
    code, _, err = cli("class", "--model", model, "--forget", "1", "--method", "ft", "--steps", "1")
    assert code == 0, err


def test_same_seed_same_samples(tiny_recipe):
    from erase.config import load_recipe
    from erase.evaluate.probe import generate_for_classes
    from erase.models import load_generator

    recipe = load_recipe(str(tiny_recipe))
    torch.manual_seed(0)
    bundle = load_generator(recipe, init="random")
    a, _ = generate_for_classes(bundle.pipeline, {1: 3, 2: 2}, 7, recipe.sampling)
    b, _ = generate_for_classes(bundle.pipeline, {2: 2, 1: 3}, 7, recipe.sampling, batch_size=1)
    assert torch.allclose(a[:3], b[2:], atol=1e-5) and torch.allclose(a[3:], b[:2], atol=1e-5)


def _unet_weights(run):
    from safetensors.torch import load_file

    return load_file(run / "model" / "unet" / "diffusion_pytorch_model.safetensors")


def test_gradient_checkpointing_trades_memory_not_results(cli, tiny_recipe, workdir):
    args = ("class", "--model", tiny_recipe, "--forget", "3", "--method", "salun", "--init", "random",
            "--steps", "2", "--samples", "1", "--forget-samples", "1")
    assert cli(*args, "--out", "plain")[0] == 0
    code, _, err = cli(*args, "--out", "checkpointed", "--gradient-checkpointing")
    assert code == 0, err
    report = json.loads((workdir / "checkpointed" / "EVAL.json").read_text())
    assert report["settings"]["gradient_checkpointing"] is True
    plain, checkpointed = _unet_weights(workdir / "plain"), _unet_weights(workdir / "checkpointed")
    assert plain.keys() == checkpointed.keys()
    for name in plain:  # recomputing activations must not change the update
        torch.testing.assert_close(plain[name], checkpointed[name], rtol=1e-5, atol=1e-6)


def test_bf16_mixed_precision_runs_on_cpu(cli, tiny_recipe, workdir):
    code, _, err = cli("class", "--model", tiny_recipe, "--forget", "3", "--method", "relabel", "--init", "random",
                       "--steps", "2", "--samples", "1", "--forget-samples", "1", "--mixed-precision", "bf16")
    assert code == 0, err
    run = _run_folder(workdir)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(v)) for h in history for k, v in h.items() if k != "step")
    assert all(t.dtype == torch.float32 for t in _unet_weights(run).values())  # weights stay fp32, autocast only
