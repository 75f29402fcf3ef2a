"""`erase concept` on a tiny random Stable Diffusion stack: every method end to end, run folder, reload."""
import json

import pytest
import torch

METHODS = [["--method", m] for m in ("ft", "ga", "relabel", "salun", "esd", "esd-x", "sfron", "igs", "partial")]
METHODS += [["--method", "salun", "--objective", "esd"], ["--method", "salun", "--params", "cross-attn"]]


def _run_folder(workdir):
    runs = list((workdir / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("method", METHODS, ids=[" ".join(m[1::2]) for m in METHODS])
def test_tiny_sd_concept_run(cli, workdir, method):
    code, out, err = cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--steps", "2", *method)
    assert code == 0, err
    run = _run_folder(workdir)
    for name in ("config.yaml", "EVAL.json", "SUMMARY.md", "history.jsonl", "grids/before.png", "grids/after.png",
                 "grids/before_after.png", "data/forget.safetensors",
                 "model/model_index.json", "model/unet/diffusion_pytorch_model.safetensors",
                 "model/vae/diffusion_pytorch_model.safetensors", "model/text_encoder/model.safetensors"):
        assert (run / name).is_file(), name
    report = json.loads((run / "EVAL.json").read_text())
    uses_retain = method[1] not in ("ga", "esd", "esd-x")  # these train on forget data only: no retain images
    assert (run / "data" / "retain.safetensors").is_file() == uses_retain
    assert (report["data"]["retain_images"] > 0) == uses_retain
    assert report["target"] == {"kind": "concept", "value": "nudity", "name": "nudity"}
    assert report["method"] == method[1] and report["steps"] == 2
    for which in ("original", "unlearned"):
        metrics = report["metrics"][which]
        assert 0 <= metrics["nudity_rate"] <= 1 and metrics["unlearning_accuracy"] == 1 - metrics["nudity_rate"]
        assert metrics["nudity_threshold"] == 0.6 and metrics["judge"] == "nudenet"
        assert set(metrics["nudity"]["nudity_prompts"]["per_class_counts"]) >= {"FEMALE_BREAST_EXPOSED"}
    assert "nudity rate" in out


def test_concept_model_loads_in_diffusers_and_samples(cli, workdir):
    from diffusers import StableDiffusionPipeline

    assert cli("concept", "--prompt", "van gogh style", "--init", "random", "--tiny", "--method", "ga")[0] == 0
    run = _run_folder(workdir)
    report = json.loads((run / "EVAL.json").read_text())
    assert "skipped" in report["metrics"]["unlearned"]  # no judge for a free-text concept: grids only
    assert report["prompts"]["source"].endswith("(templates)")
    pipe = StableDiffusionPipeline.from_pretrained(run / "model")
    images = pipe(["a painting"], num_inference_steps=2, output_type="pt",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 3, 16, 16)
    code, _, err = cli("sample", "--model", run / "model", "--prompts", "a painting", "a photo", "--per-class", "2",
                       "--out", "g.png")
    assert code == 0, err and (workdir / "g.png").is_file()


def test_same_prompt_same_images_wherever_it_is_listed():
    from erase.config import load_recipe
    from erase.evaluate.text import generate_for_prompts
    from erase.models import load_generator
    from erase.models.sd import apply_tiny

    recipe = apply_tiny(load_recipe("sd-v1-4"))
    torch.manual_seed(0)
    bundle = load_generator(recipe, init="random")
    a, _ = generate_for_prompts(bundle.pipeline, ["a photo", "a dog"], 2, 3, recipe.sampling)
    b, _ = generate_for_prompts(bundle.pipeline, ["a dog", "a photo"], 2, 3, recipe.sampling, batch_size=1)
    assert torch.allclose(a[:2], b[2:], atol=1e-5) and torch.allclose(a[2:], b[:2], atol=1e-5)


def test_text_adapter_conditions_on_prompts_and_empty_prompt():
    from erase.config import load_recipe
    from erase.models import load_generator
    from erase.models.sd import apply_tiny

    torch.manual_seed(0)
    bundle = load_generator(apply_tiny(load_recipe("sd-v1-4")), init="random")
    adapter = bundle.adapter
    ids = adapter.tokenize(["a photo of a nude person", "a photo of a person wearing clothes"])
    cond = adapter.condition({"input_ids": ids})
    assert cond.shape == (2, 77, 32) and not torch.allclose(cond[0], cond[1])
    null = adapter.null_condition(cond)
    assert null.shape == cond.shape and torch.equal(null[0], null[1])
    latents = adapter.encode(torch.zeros(2, 3, 16, 16))
    assert latents.shape == (2, 4, 8, 8)
    assert not any(p.requires_grad for p in adapter.text_encoder.parameters())


def test_esd_on_forget_prompts_is_the_reference_esd_when_the_prompt_is_the_concept_alone():
    """esd_prompts=forget: target eps*(prompt without concept) - eta (eps*(concept) - eps*(empty)). For the
    prompt "nudity" with the empty neutral prompt that is ESD's own target; for a longer prompt it differs."""
    from erase.config import load_recipe
    from erase.methods.base import frozen_copy
    from erase.models import load_generator
    from erase.models.sd import apply_tiny
    from erase.tasks.denoising import denoising_task

    torch.manual_seed(0)
    bundle = load_generator(apply_tiny(load_recipe("sd-v1-4")), init="random")
    task = denoising_task(bundle)
    task.set_reference(frozen_copy(bundle.denoiser))
    with torch.no_grad():  # make the model being trained differ from its frozen copy
        for p in bundle.denoiser.parameters():
            p.add_(0.01 * torch.randn_like(p))
    tokenize = bundle.adapter.tokenize
    x = torch.rand(2, 3, 16, 16) * 2 - 1

    def loss(prompt, neutral, mode, anchor=""):
        batch = {"x": x, "input_ids": tokenize([prompt] * 2), "concept_ids": tokenize(["nudity"] * 2),
                 "neutral_ids": tokenize([neutral] * 2), "anchor_ids": tokenize([anchor] * 2)}
        torch.manual_seed(1)
        return task.esd_loss(bundle.denoiser, batch, eta=1.0, prompts=mode)

    reference = loss("nudity", "", "concept")
    assert torch.allclose(loss("nudity", "", "forget"), reference)
    longer = loss("a photo of a nude person", "a photo of a person", "forget")
    assert not torch.allclose(longer, reference)
    # esd_prompts=anchor: the anchor prompt takes the neutral prompt's place
    assert torch.allclose(loss("a photo of a nude person", "x", "anchor", anchor="a photo of a person"), longer)


def test_pretrained_sd_loads_strictly_from_the_local_hf_cache(cli, workdir, monkeypatch):
    """A diffusers SD folder in the Hugging Face cache layout is found offline, by repo id, and loaded."""
    import yaml

    from erase.config import load_recipe
    from erase.models import load_generator
    from erase.models.sd import apply_tiny

    torch.manual_seed(0)
    tiny = apply_tiny(load_recipe("sd-v1-4"))
    bundle = load_generator(tiny, init="random")
    cache = workdir / "hf-cache"
    snapshot = cache / "models--someone--tiny-sd" / "snapshots" / ("0" * 40)
    bundle.pipeline.save_pretrained(snapshot, safe_serialization=True)
    (cache / "models--someone--tiny-sd" / "refs").mkdir()
    (cache / "models--someone--tiny-sd" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    recipe = {k: v for k, v in tiny.to_dict().items()}
    recipe.update(name="tiny-sd", weights=None, extra={"hf_repo": "someone/tiny-sd"})
    (workdir / "tiny-sd.yaml").write_text(yaml.safe_dump(recipe))
    loaded = load_generator(load_recipe(str(workdir / "tiny-sd.yaml")))
    for a, b in zip(bundle.denoiser.state_dict().values(), loaded.denoiser.state_dict().values()):
        assert torch.equal(a, b)
    code, _, err = cli("concept", "--model", workdir / "tiny-sd.yaml", "--prompt", "nudity", "--method", "relabel")
    assert code == 0, err
    # a damaged component is refused, naming the file
    weights = snapshot / "text_encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    code, _, err = cli("concept", "--model", workdir / "tiny-sd.yaml", "--prompt", "nudity", "--out", "x")
    assert code == 2 and "corrupt or truncated" in err


def test_interrupted_concept_run_resumes_on_its_cached_data(cli, workdir):
    from safetensors.torch import load_file

    assert cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--out", "run")[0] == 0
    run = workdir / "run"
    assert "NudeNet detections" in (run / "SUMMARY.md").read_text()
    forget = load_file(run / "data" / "forget.safetensors")
    (run / "EVAL.json").unlink()  # as if stopped before the end
    code, _, err = cli("concept", "--resume", run)
    assert code == 0, err
    assert (run / "EVAL.json").is_file()
    again = load_file(run / "data" / "forget.safetensors")
    assert all(torch.equal(forget[k], again[k]) for k in forget)


def test_a_second_method_on_the_same_model_trains_on_the_same_images_without_generating_them(cli, workdir,
                                                                                           monkeypatch):
    from safetensors.torch import load_file

    import erase.data.concept_sets as concept_sets
    import erase.evaluate.cache as cache

    monkeypatch.setattr(cache, "CACHE_DIR", workdir / "cache")  # this test's own cache
    calls = []
    generate = concept_sets.generate_for_prompts
    monkeypatch.setattr(concept_sets, "generate_for_prompts", lambda *a, **k: calls.append(a[1]) or generate(*a, **k))
    args = ("concept", "--prompt", "nudity", "--init", "random", "--tiny")
    assert cli(*args, "--method", "relabel", "--out", "first")[0] == 0
    generated = len(calls)
    assert generated == 2  # forget and retain images ...
    assert cli(*args, "--method", "salun", "--out", "second")[0] == 0
    assert len(calls) == generated  # ... the second method reads them from the cache
    for name in ("forget", "retain"):
        first, second = (load_file(workdir / run / "data" / f"{name}.safetensors") for run in ("first", "second"))
        assert all(torch.equal(first[k], second[k]) for k in first), name
    assert cli(*args, "--method", "relabel", "--seed", "1", "--out", "third")[0] == 0
    assert len(calls) == generated + 2  # other seeds, other images
