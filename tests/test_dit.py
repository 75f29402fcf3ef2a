"""DiT family on tiny configs: pixel and latent (tiny VAE) models, learned sigma, save/reload, erase class."""
import json

import pytest
import torch
import yaml

from erase.config import load_recipe
from erase.models import load_generator
from erase.models.pipeline import ClassConditionalPipeline
from erase.tasks.denoising import denoising_task
from tests.conftest import TINY_DDPM

TINY_DIT = {
    **TINY_DDPM,
    "name": "tiny-dit",
    "family": "dit",
    "architecture": {"num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 2, "patch_size": 4,
                     "out_channels": 1},
}
# Latent DiT: a tiny AutoencoderKL (16x16 RGB -> 8x8x4) and a learned-sigma transformer, as DiT-XL/2.
TINY_LATENT_DIT = {
    **TINY_DIT,
    "name": "tiny-latent-dit",
    "channels": 3,
    "world": None,
    "probe": None,
    "architecture": {
        "num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 1, "patch_size": 2,
        "in_channels": 4, "out_channels": 8, "sample_size": 8,
        "vae": {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [8, 8],
                "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
                "norm_num_groups": 4, "sample_size": 16, "scaling_factor": 0.5},
    },
}


def _recipe(workdir, data):
    path = workdir / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def tiny_dit(workdir):
    return _recipe(workdir, TINY_DIT)


def _bundle(data, workdir):
    torch.manual_seed(0)
    return load_generator(load_recipe(str(_recipe(workdir, data))), init="random")


def _sample(pipeline, labels=(1, 2)):
    return pipeline(class_labels=list(labels), num_inference_steps=2, guidance_scale=2.0, output_type="pt",
                    generator=torch.Generator().manual_seed(0)).images


def test_tiny_dit_class_run_writes_a_complete_run_folder(cli, tiny_dit, workdir):
    code, out, err = cli("class", "--model", tiny_dit, "--forget", "3", "--method", "salun", "--init", "random",
                         "--steps", "2", "--out", "run")
    assert code == 0, err
    run = workdir / "run"
    for name in ("config.yaml", "EVAL.json", "SUMMARY.md", "grids/before.png", "grids/after.png",
                 "model/model_index.json", "model/transformer/diffusion_pytorch_model.safetensors",
                 "model/scheduler/scheduler_config.json", "model/erase_recipe.yaml"):
        assert (run / name).is_file(), name
    report = json.loads((run / "EVAL.json").read_text())
    for which in ("original", "unlearned"):
        assert set(report["metrics"][which]["per_class_accuracy"]) == {str(i) for i in range(10)}
    # the run's model is a --model again, for sampling and for another unlearning run
    code, _, err = cli("sample", "--model", run / "model", "--classes", "0-2", "--per-class", "2", "--out", "g.png")
    assert code == 0, err
    assert (workdir / "g.png").is_file()


@pytest.mark.parametrize("data", [TINY_DIT, TINY_LATENT_DIT], ids=["pixel", "latent"])
def test_save_reload_sample_round_trip(data, workdir):
    bundle = _bundle(data, workdir)
    before = _sample(bundle.pipeline)
    assert before.shape == (2, data["channels"], 16, 16)
    bundle.save(workdir / "saved")
    reloaded = ClassConditionalPipeline.from_pretrained(workdir / "saved")
    assert type(reloaded.transformer).__name__ == "DiTTransformer2DModel"
    assert (reloaded.vae is None) == ("vae" not in data["architecture"])
    assert torch.allclose(_sample(reloaded), before, atol=1e-5)  # the VAE's decoder differs in the last bits
    # and through erase's strict loader, by folder
    again = load_generator(load_recipe(str(workdir / "saved")))
    assert torch.allclose(_sample(again.pipeline), before, atol=1e-5)


def test_learned_sigma_uses_the_epsilon_half(workdir):
    bundle = _bundle(TINY_LATENT_DIT, workdir)
    model, task = bundle.denoiser, denoising_task(bundle)
    batch = {"x": torch.rand(4, 3, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}
    latents = task.adapter.encode(batch["x"])
    assert latents.shape == (4, 4, 8, 8)
    t = torch.tensor([5, 6, 7, 8])
    raw = model(latents, t, class_labels=batch["label"]).sample
    assert raw.shape == (4, 8, 8, 8)  # epsilon and the variance interpolation
    eps = task.adapter.predict(model, latents, t, batch["label"])
    assert eps.shape == latents.shape and torch.equal(eps, raw[:, :4])
    # the loss reaches only the epsilon outputs: proj_out_2 rows of the sigma channels get no gradient
    model.zero_grad()
    task.training_loss(model, batch).mean().backward()
    grad = model.proj_out_2.weight.grad.reshape(2, 2, 8, -1)  # (patch, patch, out channels, inner)
    assert grad[:, :, 4:].abs().sum() == 0 and grad[:, :, :4].abs().sum() > 0


def test_model_label_dropout_is_off_so_labels_mean_what_they_say(workdir):
    bundle = _bundle(TINY_DIT, workdir)
    model = bundle.denoiser.train()
    x, t, labels = torch.randn(64, 1, 16, 16), torch.full((64,), 10), torch.full((64,), 3)
    assert torch.equal(model(x, t, class_labels=labels).sample, model(x, t, class_labels=labels).sample)
    assert bundle.pipeline.null_class == 10


def tiny_imagenet_recipe(workdir, **changes):
    """pipelines/dit-imagenet.yaml with the tiny latent DiT in place of DiT-XL/2 (same names, probe, data)."""
    from erase.config import PIPELINES_DIR

    data = yaml.safe_load((PIPELINES_DIR / "dit-imagenet.yaml").read_text())
    data.update(name="tiny-dit-imagenet", resolution=16, architecture=TINY_LATENT_DIT["architecture"],
                sampling={"num_inference_steps": 2, "guidance_scale": 2.0},
                unlearn={"steps": 2, "lr": 1e-3, "batch_size": 4},
                evaluate={"samples_per_class": 2, "retained_classes": 3, "forget_samples": 3,
                          "grid_per_class": 2, "batch_size": 16}, **changes)
    data["extra"]["generated_data"] = {"forget_per_class": 4, "retain_classes": 3, "retain_per_class": 2}
    path = workdir / "tiny-dit-imagenet.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_imagenet_recipe_forgets_by_name_with_generated_data_and_no_probe(cli, workdir, monkeypatch):
    monkeypatch.setenv("ERASE_MODELS", str(workdir / "models"))  # no probe weights there
    recipe = tiny_imagenet_recipe(workdir)
    code, out, err = cli("class", "--model", recipe, "--forget", "golden retriever", "--method", "salun",
                         "--init", "random", "--out", "run")
    assert code == 0, err
    run = workdir / "run"
    report = json.loads((run / "EVAL.json").read_text())
    assert report["target"] == {"kind": "class", "value": 207, "name": "golden retriever"}
    assert report["data"] == {"source": "generated by the original model", "forget_images": 4, "retain_images": 6}
    assert (run / "data" / "generated.safetensors").is_file()
    for which in ("original", "unlearned"):
        skipped = report["metrics"][which]["skipped"]
        assert "ResNet-50 probe weights not found" in skipped and "unlearning_accuracy" not in report["metrics"][which]
    assert (run / "grids" / "before_after.png").is_file()
    # a resumed run trains on the images cached in the run folder, not on new ones
    cached = (run / "data" / "generated.safetensors").stat().st_mtime_ns
    (run / "EVAL.json").unlink()
    code, _, err = cli("class", "--resume", run)
    assert code == 0, err
    assert (run / "EVAL.json").is_file() and (run / "data" / "generated.safetensors").stat().st_mtime_ns == cached


def _image_folder(root, classes, per_class=3, size=16):
    from PIL import Image

    for name in classes:
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            Image.new("L", (size, size), color=20 * j).save(root / name / f"{j}.png")
    return root


def test_class_run_trains_on_an_image_folder(cli, workdir):
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    recipe = _recipe(workdir, {**TINY_DIT, "world": None, "name": "folder-dit", "class_names": names})
    folder = _image_folder(workdir / "images", ["0", "3", "five"], per_class=5)
    code, _, err = cli("class", "--model", recipe, "--forget", "3", "--data", folder, "--init", "random",
                       "--steps", "1", "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    # 80 % of each class folder is training data: 4 images of 3 to forget, 8 of 0 and "five" (-> 5) to keep
    assert report["data"] == {"source": str(folder.resolve()), "forget_images": 4, "retain_images": 8}


def test_wnid_folders_map_to_class_ids_in_sorted_order(workdir):
    from erase.data.class_sets import recipe_labels
    from erase.data.datasets import LabelledImages
    from erase.errors import UserError

    recipe = load_recipe(str(_recipe(workdir, TINY_DIT)))
    wnids = [f"n0{i}" for i in range(10)]
    data = LabelledImages(torch.zeros(2, 1, 16, 16), torch.tensor([9, 2]), wnids)
    assert recipe_labels(data, recipe, workdir).labels.tolist() == [9, 2]
    with pytest.raises(UserError, match="rename them"):
        recipe_labels(LabelledImages(torch.zeros(1, 1, 16, 16), torch.tensor([0]), ["cat"]), recipe, workdir)


def test_resnet50_probe_judges_any_resolution(workdir):
    from safetensors.torch import save_file
    from torchvision.models import resnet50

    from erase.evaluate.imagenet_probe import load_resnet50_probe

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in resnet50().state_dict().items() if "num_batches_tracked" not in k}
    save_file(state, workdir / "resnet50.safetensors")
    probe, reason = load_resnet50_probe(workdir / "resnet50.safetensors")
    assert reason == "" and probe(torch.rand(2, 3, 64, 64) * 2 - 1).shape == (2, 1000)
    assert load_resnet50_probe(workdir / "absent.safetensors")[0] is None


def test_shipped_dit_digits_loads_strictly_and_samples(cli, workdir):
    code, out, err = cli("sample", "--model", "dit-digits", "--classes", "3,7", "--per-class", "2",
                         "--guidance-scale", "2", "--inference-steps", "5", "--out", "g.png")
    assert code == 0, err
    assert (workdir / "g.png").is_file()
