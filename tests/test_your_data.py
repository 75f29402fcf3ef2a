"""Your own data: a generator and its probe trained on an ImageFolder erase never saw (rendered letters),
`erase class` on the folder, `erase eval` of the result; I2P-style prompt CSVs; bad input refused."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from erase.data.synthetic import write_letters
from tests.conftest import files_under

LETTERS = "AOTX"  # four glyphs that a 16 px UNet tells apart after a few hundred steps
FORGET = "X"
# the acceptance chain: sizes that hold with margin in about a minute of CPU (docs/your-data.md)
GENERATOR = ["--steps", "400", "--width", "16", "--batch-size", "32", "--lr", "0.003", "--grid-every", "200",
             "--score-samples", "16"]
PROBE = ["--steps", "300", "--batch-size", "32"]
UNLEARN = ["--steps", "25"]  # SalUn with the recipe's other defaults; half its 50 steps already forget here
EVALUATION = ["--samples", "16", "--forget-samples", "32"]
TINY_GENERATOR = ["--steps", "2", "--width", "4", "--channel-mult", "1,2", "--grid-every", "0"]


@pytest.fixture(scope="module")
def letters(tmp_path_factory):
    return write_letters(tmp_path_factory.mktemp("data") / "letters", LETTERS, per_class=64, seed=0)


def _fail(result, words: str, workdir, before):
    code, out, err = result
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert files_under(workdir) == before, "a refused command wrote files"


@pytest.mark.slow
def test_letters_chain_forgets_one_letter_and_keeps_the_others(cli, workdir, letters):
    code, _, err = cli("pretrain", "probe", "--data", letters, "--out", "probe", *PROBE)
    assert code == 0, err
    assert json.loads((workdir / "probe" / "PRETRAIN.json").read_text())["test_accuracy"] >= 0.95

    code, _, err = cli("pretrain", "ddpm", "--data", letters, "--out", "letters-ddpm", "--probe", "probe",
                       *GENERATOR)
    assert code == 0, err
    model = workdir / "letters-ddpm"
    record = json.loads((model / "PRETRAIN.json").read_text())
    assert record["steps"] == 400 and record["data"]["classes"] == list(LETTERS)
    assert (model / "grids" / "step-0000200.png").is_file() and not (model / "checkpoints").exists()
    drawn = record["generated_probe_accuracy"]["per_class"]
    assert min(drawn.values()) >= 0.8, drawn  # the original draws every letter, the forgotten one included

    # the folder is the model: its recipe remembers the data and the probe
    code, out, err = cli("class", "--model", model, "--forget", FORGET, "--out", "runs/salun", *UNLEARN,
                         *EVALUATION)
    assert code == 0, err
    report = json.loads((workdir / "runs" / "salun" / "EVAL.json").read_text())
    assert report["data"]["source"] == str(letters.resolve()) and report["target"]["name"] == FORGET
    original, unlearned = report["metrics"]["original"], report["metrics"]["unlearned"]
    assert original["per_class_accuracy"][FORGET] >= 0.8, original
    assert unlearned["per_class_accuracy"][FORGET] <= 0.2, unlearned  # the letter is gone ...
    for letter in LETTERS.replace(FORGET, ""):  # ... and the others stay
        assert unlearned["per_class_accuracy"][letter] >= min(0.75, original["per_class_accuracy"][letter] - 0.2)
    assert "fid_probe" in unlearned  # against the data folder's images

    code, out, err = cli("eval", "--model", "runs/salun/model", "--original", model, "--forget", FORGET,
                         "--out", "runs/judged", *EVALUATION)
    assert code == 0, err
    judged = json.loads((workdir / "runs" / "judged" / "EVAL.json").read_text())
    assert judged["method"] == "salun" and judged["provenance"]["run"] == str((workdir / "runs/salun").resolve())
    for which in ("original", "unlearned"):  # the same judges on the same seeds: the run's own numbers
        assert judged["metrics"][which]["per_class_accuracy"] == report["metrics"][which]["per_class_accuracy"]
    for name in ("grids/before.png", "grids/after.png", "SUMMARY.md", "plots/per_class_accuracy.png"):
        assert (workdir / "runs" / "judged" / name).is_file(), name
    code, _, err = cli("compare", "runs/salun", "runs/judged", "--out", "cmp")
    assert code == 0, err
    assert (workdir / "cmp" / "compare.md").read_text().count("| class X |") == 3  # original + both runs
    code, _, err = cli("eval", "--run", "runs/judged", *EVALUATION)  # an eval run re-scores like any run
    assert code == 0, err
    rescored = json.loads(next((workdir / "runs" / "judged" / "evals").glob("*.json")).read_text())
    assert rescored["metrics"]["unlearned"] == judged["metrics"]["unlearned"]


@pytest.fixture(scope="module")
def tiny_generator(letters, tmp_path_factory):
    """A two-step generator of the letters folder (random-looking samples; enough to exercise the plumbing)."""
    from erase.cli import main

    folder = tmp_path_factory.mktemp("models") / "tiny-ddpm"
    assert main(["pretrain", "ddpm", "--data", str(letters), "--out", str(folder), *TINY_GENERATOR]) == 0
    return folder


def test_generator_folder_is_a_model_with_its_data_and_sized_architecture(tiny_generator, letters):
    recipe = yaml.safe_load((tiny_generator / "erase_recipe.yaml").read_text())
    assert recipe["data"] == str(letters.resolve()) and recipe["class_names"] == list(LETTERS)
    assert (recipe["resolution"], recipe["channels"]) == (16, 1)  # from the images: 16 px grayscale
    assert recipe["architecture"]["block_out_channels"] == [4, 8]
    record = json.loads((tiny_generator / "PRETRAIN.json").read_text())
    assert record["command"].startswith("python -m erase pretrain ddpm") and record["final_loss"] > 0
    assert "pretrain probe --data" in record["probe"]["note"]  # no probe linked: the one command that makes it
    assert (tiny_generator / "grids" / "final.png").is_file()


def test_synthetic_folders_are_reproducible_and_summarised(tmp_path):
    from erase.data.images import default_resolution, summarize_data
    from erase.data.synthetic import PATTERNS, write_patterns

    a = write_patterns(tmp_path / "a", 3, per_class=2, size=24, seed=5)
    b = write_patterns(tmp_path / "b", 3, per_class=2, size=24, seed=5)
    assert [p.read_bytes() for p in sorted(a.rglob("*.png"))] == [p.read_bytes() for p in sorted(b.rglob("*.png"))]
    patterns = summarize_data(a)
    assert patterns.class_names == sorted(PATTERNS[:3]) and patterns.channels == 3 and patterns.median_side == 24
    assert default_resolution(patterns.median_side) == 32
    letters = summarize_data(write_letters(tmp_path / "l", "XY", per_class=3, split=1 / 3))
    assert letters.layout == "train/test" and letters.channels == 1 and letters.train_images == 4


def test_default_architecture_follows_the_resolution():
    from erase.pretraining.from_data import ArchitectureOptions, ddpm_architecture

    cifar = ddpm_architecture(32)  # SalUn's CIFAR-10 UNet
    assert cifar["block_out_channels"] == [128, 256, 256, 256] and cifar["layers_per_block"] == 2
    assert cifar["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"]
    assert cifar["up_block_types"] == ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
    small = ddpm_architecture(16)  # digits' UNet
    assert small["block_out_channels"] == [32, 64, 64] and small["down_block_types"] == ["DownBlock2D"] * 3
    mine = ddpm_architecture(64, ArchitectureOptions(width=64, channel_mult=[1, 2, 4], attention=[32, 16]))
    assert mine["block_out_channels"] == [64, 128, 256]
    assert mine["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]


def test_flip_augmentation_mirrors_about_half_the_images():
    from erase.errors import UserError
    from erase.tasks.denoising import augmentation

    images = torch.arange(64 * 4, dtype=torch.float32).reshape(64, 1, 1, 4)
    torch.manual_seed(0)
    out = augmentation("flip")(images)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert ((out == images).flatten(1).all(1) | mirrored).all() and 16 < int(mirrored.sum()) < 48
    assert augmentation(None) is None
    with pytest.raises(UserError, match="unknown augment 'rotate'"):
        augmentation("rotate")


def test_interrupted_generator_resumes_to_the_same_weights(cli, workdir, letters, monkeypatch):
    from erase.pretraining.generator_job import GridHook

    args = ["pretrain", "ddpm", "--data", letters, "--steps", "4", "--width", "4", "--channel-mult", "1,2",
            "--checkpoint-every", "2", "--grid-every", "0"]
    assert cli(*args, "--out", "whole")[0] == 0

    def killed(self, model, step):
        if step == 2:  # after the checkpoint at step 2
            raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(GridHook, "after_step", killed)
        code, _, err = cli(*args, "--out", "broken")
    assert code == 130 and not (workdir / "broken" / "PRETRAIN.json").exists()
    _fail(cli(*args, "--out", "broken"), "--resume", workdir, files_under(workdir))
    code, _, err = cli("pretrain", "--resume", "broken")
    assert code == 0, err
    record = json.loads((workdir / "broken" / "PRETRAIN.json").read_text())
    assert record["resumed_from"] == 2 and record["steps"] == 4
    whole = load_file(workdir / "whole" / "unet" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(workdir / "broken" / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def _folder_with(root, classes: dict[str, int], broken: str | None = None):
    from PIL import Image

    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (16, 16), 40 * i).save(root / name / f"{i}.png")
    if broken:
        (root / broken / "broken.png").write_bytes(b"not an image")
    return root


@pytest.mark.parametrize("kind", ["ddpm", "probe"])
@pytest.mark.parametrize("classes, broken, words", [
    ({"a": 3}, None, "has one class (a)"),
    ({"a": 3, "b": 0}, None, "holds no images: add images or remove the folder"),
    ({"a": 3, "b": 3}, "b", "cannot read image"),
    ({"a": 0, "b": 0}, None, "holds no images (looked for"),
], ids=["one class", "empty class", "unreadable image", "no images"])
def test_bad_image_folders_are_refused(cli, workdir, kind, classes, broken, words):
    data = _folder_with(workdir / "data", classes, broken)
    before = files_under(workdir)
    _fail(cli("pretrain", kind, "--data", data, "--out", "out"), words, workdir, before)
    assert not (workdir / "out").exists()


def test_a_class_the_model_does_not_have_is_refused(cli, workdir, tiny_generator):
    _fail(cli("class", "--model", tiny_generator, "--forget", "Q"), "unknown class 'Q'", workdir, [])
    _fail(cli("eval", "--model", tiny_generator, "--original", tiny_generator, "--forget", "Q"),
          "unknown class 'Q'", workdir, [])


def test_class_takes_a_probe_for_a_folder_model_and_refuses_one_of_other_classes(cli, workdir, letters,
                                                                                 tiny_generator, tmp_path_factory):
    assert cli("pretrain", "probe", "--data", letters, "--out", "probe", "--steps", "1")[0] == 0
    code, _, err = cli("class", "--model", tiny_generator, "--forget", "A", "--probe", "probe", "--steps", "1",
                       "--samples", "1", "--forget-samples", "2", "--out", "run")
    assert code == 0, err
    metrics = json.loads((workdir / "run" / "EVAL.json").read_text())["metrics"]["unlearned"]
    assert set(metrics["per_class_accuracy"]) == set(LETTERS) and metrics["forget_samples"] == 2

    other = write_letters(tmp_path_factory.mktemp("data") / "other", "BCDE", per_class=4)
    assert cli("pretrain", "probe", "--data", other, "--out", "other-probe", "--steps", "1")[0] == 0
    before = files_under(workdir)
    words = "classifies ['B', 'C', 'D', 'E'], but"
    _fail(cli("class", "--model", tiny_generator, "--forget", "A", "--probe", "other-probe"), words, workdir, before)
    _fail(cli("pretrain", "ddpm", "--data", letters, "--out", "g", "--probe", "other-probe", *TINY_GENERATOR), words,
          workdir, before)
    _fail(cli("eval", "--model", tiny_generator, "--original", tiny_generator, "--forget", "A", "--probe",
              "other-probe"), words, workdir, before)


def test_eval_judges_a_bare_diffusers_folder_as_the_originals_architecture(cli, workdir, tiny_generator):
    import shutil

    bare = workdir / "bare"  # a pipeline saved elsewhere: no erase recipe, no run around it
    shutil.copytree(tiny_generator, bare, ignore=shutil.ignore_patterns("erase_recipe.yaml", "pretrain.yaml",
                                                                        "PRETRAIN.json", "grids"))
    code, out, err = cli("eval", "--model", bare, "--original", tiny_generator, "--forget", "T", "--samples", "1",
                         "--forget-samples", "2", "--out", "judged", "--label", "theirs")
    assert code == 0, err
    report = json.loads((workdir / "judged" / "EVAL.json").read_text())
    assert report["method"] == "theirs" and report["unlearned_model"] == str(bare.resolve())
    assert report["target"] == {"kind": "class", "value": 2, "name": "T"} and "provenance" not in report
    assert "skipped" in report["metrics"]["unlearned"]  # no probe linked: grids only, and the reason
    assert (workdir / "judged" / "grids" / "after.png").is_file()


def test_eval_refuses_two_models_of_different_kinds(cli, workdir, tiny_generator):
    _fail(cli("eval", "--model", "t2i-shapes", "--original", tiny_generator, "--forget", "A"),
          "is a text-to-image model but", workdir, [])
    _fail(cli("eval", "--model", tiny_generator, "--original", "digits-cnn", "--forget", "A"), "is a classifier",
          workdir, [])
    _fail(cli("eval", "--model", tiny_generator, "--original", "ddpm-digits", "--forget", "A"),
          "they are not the same model's classes", workdir, [])


CSV = ('case_number,prompt,evaluation_seed,evaluation_guidance,categories\n'
       '0,"a photo of a person, nude",42,7.5,"sexual,shocking"\n'
       '1, a  person  on a beach ,7,3,sexual\n'
       '2,a painting of a nude person,11,1,\n')


def test_prompt_csv_keeps_each_rows_seed_guidance_and_categories(tmp_path):
    from erase.data.prompts import read_prompt_csv
    from erase.errors import UserError

    (tmp_path / "i2p.csv").write_text(CSV)
    rows = read_prompt_csv(tmp_path / "i2p.csv")
    assert rows.prompts == ["a photo of a person, nude", "a person on a beach", "a painting of a nude person"]
    assert rows.seeds == [42, 7, 11] and rows.guidance == [7.5, 3.0, 1.0]
    assert rows.categories == ["sexual,shocking", "sexual", ""]
    (tmp_path / "plain.csv").write_text("prompt\na dog\n")
    assert read_prompt_csv(tmp_path / "plain.csv").seeds is None
    for text, words in (("text,seed\na dog,1\n", "has no 'prompt' column (its columns: text, seed)"),
                        ("prompt,evaluation_seed\na dog,one\n", "line 2: evaluation_seed 'one' is not a whole"),
                        ("prompt\n", "holds no prompts")):
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
            read_prompt_csv(tmp_path / "bad.csv")


def test_each_csv_row_is_drawn_with_its_own_seed_and_guidance():
    from erase.config import load_recipe
    from erase.evaluate.text import generate_for_prompts
    from erase.models import load_generator
    from erase.models.sd import apply_tiny

    recipe = apply_tiny(load_recipe("sd-v1-4"))
    torch.manual_seed(0)
    pipeline = load_generator(recipe, init="random").pipeline
    images, index = generate_for_prompts(pipeline, ["a dog", "a cat"], 2, 0, recipe.sampling, batch_size=3,
                                         seeds=[5, 9], guidance=[1.0, 7.0])
    assert index.tolist() == [0, 0, 1, 1]
    unet = pipeline.unet.config
    shape = (2, unet.in_channels, unet.sample_size, unet.sample_size)
    for row, (prompt, seed, scale) in enumerate((("a dog", 5, 1.0), ("a cat", 9, 7.0))):
        # ESD's and SalUn's scripts: torch.manual_seed(seed), then one batch of noise for the prompt's images
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        direct = pipeline(prompt=[prompt] * 2, latents=noise, output_type="pt",
                          **{**recipe.sampling, "guidance_scale": scale}).images * 2 - 1
        assert torch.allclose(images[2 * row:2 * row + 2], direct, atol=1e-4), row


def test_concept_and_eval_judge_a_text_to_image_model_on_csv_rows(cli, workdir):
    from erase.config import load_recipe
    from erase.models import load_generator
    from erase.models.sd import apply_tiny

    torch.manual_seed(0)
    load_generator(apply_tiny(load_recipe("sd-v1-4")), init="random").save(workdir / "tiny-sd")
    (workdir / "i2p.csv").write_text(CSV)
    (workdir / "no-prompt.csv").write_text("text\na dog\n")
    _fail(cli("concept", "--model", "tiny-sd", "--prompt", "nudity", "--eval-prompts", "no-prompt.csv"),
          "has no 'prompt' column", workdir, files_under(workdir))

    code, _, err = cli("concept", "--model", "tiny-sd", "--prompt", "nudity", "--method", "ga", "--steps", "1",
                       "--eval-prompts", "i2p.csv", "--out", "runs/ga")
    assert code == 0, err
    run = json.loads((workdir / "runs" / "ga" / "EVAL.json").read_text())
    assert run["prompts"]["eval_forget"] == 3 and run["prompts"]["eval_prompts_file"].endswith("i2p.csv")

    code, out, err = cli("eval", "--model", "runs/ga/model", "--original", "tiny-sd", "--prompt", "nudity",
                         "--eval-prompts", "i2p.csv", "--out", "runs/judged")
    assert code == 0, err
    judged = json.loads((workdir / "runs" / "judged" / "EVAL.json").read_text())
    assert judged["target"] == {"kind": "concept", "value": "nudity", "name": "nudity"} and judged["method"] == "ga"
    for which in ("original", "unlearned"):
        metrics = judged["metrics"][which]
        assert metrics["forget_samples"] == 3 and 0 <= metrics["nudity_rate"] <= 1
        assert set(metrics["nudity_rate_per_category"]) == {"sexual", "shocking"}
        assert metrics["nudity_rate_per_category"]["sexual"]["images"] == 2
        assert metrics == run["metrics"][which]  # the same judge, rows, seeds and guidance as the run's
    assert (workdir / "runs" / "judged" / "grids" / "before_after.png").is_file() and "nudity rate" in out
    _fail(cli("eval", "--model", "runs/ga/model", "--original", "tiny-sd", "--forget", "0"), "--prompt", workdir,
          files_under(workdir))


def test_cifar10_recipe_trains_with_salun_settings_on_cifar_batches(cli, workdir, monkeypatch):
    from erase.config import PIPELINES_DIR, load_recipe
    from erase.models.classifier import load_probe
    from erase.pretraining.from_data import ArchitectureOptions, ddpm_architecture
    from tests.test_classify_data import write_fake_cifar

    monkeypatch.setenv("ERASE_MODELS", str(workdir / "models"))
    recipe = load_recipe("ddpm-cifar10")
    salun = {"steps": 800000, "batch_size": 128, "lr": 0.0002, "optimizer": "adam", "ema_decay": 0.9999,
             "augment": "flip"}  # configs/cifar10_train.yml of SalUn's DDPM code
    assert {k: recipe.pretrain[k] for k in salun} == salun
    probe, reason = load_probe(recipe)  # not built yet: where it looked and the one command that builds it
    assert probe is None and str(workdir / "models" / "cifar10-probe") in reason and "pretrain probe --data" in reason

    # the same job on a recipe of that shape shrunk to run here: CIFAR-10 batches in, a model folder out
    shrunk = yaml.safe_load((PIPELINES_DIR / "ddpm-cifar10.yaml").read_text())
    if shrunk["family"] == "ddpm":
        architecture = ddpm_architecture(32, ArchitectureOptions(width=8, channel_mult=[1, 2]))
    else:  # the seed repos' UNet (family ddpm-seed), at a width that runs here
        architecture = {**shrunk["architecture"], "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
                        "attn_resolutions": [], "class_embed_dim": 16, "norm_num_groups": 4}
    shrunk.update(name="cifar-small", weights="$ERASE_MODELS/cifar-small", architecture=architecture,
                  sampling={**shrunk["sampling"], "num_inference_steps": 2})
    shrunk["pretrain"].update(steps=2, batch_size=4, grid_every=1, checkpoint_every=1)
    (workdir / "cifar-small.yaml").write_text(yaml.safe_dump(shrunk))
    write_fake_cifar(workdir / "cifar")
    code, _, err = cli("pretrain", "cifar-small.yaml", "--data", "cifar")
    assert code == 0, err
    folder = workdir / "models" / "cifar-small"  # the recipe's weights folder: `--model` finds it by name
    record = json.loads((folder / "PRETRAIN.json").read_text())
    assert (record["augment"], record["ema_decay"], record["lr"], record["steps"]) == ("flip", 0.9999, 0.0002, 2)
    assert record["data"]["classes"][:2] == ["airplane", "automobile"] and "cifar10-probe" in record["probe"]["note"]
    saved = yaml.safe_load((folder / "erase_recipe.yaml").read_text())
    assert saved["data"] == str((workdir / "cifar").resolve()) and saved["weights"] == "."
    assert sorted(p.name for p in (folder / "grids").iterdir()) == ["final.png", "step-0000001.png",
                                                                    "step-0000002.png"]
