"""The concept-erasure baselines on the tiny random SD stack: uce, ca, fmn each change what they should and only
that; the CLIP score of the retained prompts' images with --clip DIR, and its reason when skipped."""
import dataclasses
import json

import pytest
import torch

from tests.conftest import TINY_DDPM, files_under

# Six-token prompts: UCE's rows (9 erased, 18 preserved token embeddings) then fit in the 32 dimensions of the
# tiny text encoder, where its least-squares edit can be exact
NUDITY = ["a nude person", "nudity"]
ANCHORS = ["a clothed person", ""]
RETAIN = ["a red circle", "a starry night", "a landscape painting"]


@pytest.fixture(scope="module")
def stack():
    """A tiny random SD bundle, its denoising task, and forget/retain sets (random images, real token ids)."""
    from erase.config import load_recipe
    from erase.data.datasets import PromptImages
    from erase.models import load_generator
    from erase.models.sd import apply_tiny
    from erase.tasks.denoising import denoising_task

    tiny = apply_tiny(load_recipe("sd-v1-4"))
    tiny = dataclasses.replace(tiny, architecture={**tiny.architecture, "max_length": 6})
    torch.manual_seed(0)
    bundle = load_generator(tiny, init="random")
    tokenize = bundle.adapter.tokenize
    index = torch.arange(8) % 2
    forget = PromptImages(torch.rand(8, 3, 16, 16) * 2 - 1, tokenize(NUDITY)[index], tokenize(ANCHORS)[index],
                          tokenize(["nudity"]).expand(8, -1).clone())
    retain = PromptImages(torch.rand(6, 3, 16, 16) * 2 - 1, tokenize(RETAIN)[torch.arange(6) % 3])
    return bundle, denoising_task(bundle), forget, retain


def unlearned(stack, name, steps, lr=1e-3, **hyper):
    """A copy of the tiny UNet after `steps` of method `name` (the trainer's own loop), and the method."""
    import copy

    from erase.methods import make_method
    from erase.train import TrainSettings, unlearn

    bundle, task, forget, retain = stack
    model = copy.deepcopy(bundle.denoiser)
    method = make_method(name, **hyper)
    method.validate(model, forget, retain)
    unlearn(model, task, method, forget, retain, TrainSettings(steps=steps, lr=lr, batch_size=4, progress=False))
    return model, method


def changed_tensors(before, after) -> set[str]:
    state = after.state_dict()
    return {n for n, t in before.state_dict().items() if not torch.equal(t, state[n])}


def kv_outputs(model, embeddings):
    """Every cross-attention key/value projection's output for these embeddings, by parameter name."""
    return {f"{n}.weight": m(embeddings) for n, m in model.named_modules()
            if n.endswith(("attn2.to_k", "attn2.to_v"))}


def test_uce_solve_maps_erased_rows_onto_anchors_and_keeps_preserved_ones():
    """With fewer rows than dimensions the least-squares edit is exact: W x = W0 a and W p = W0 p."""
    from erase.methods.uce import edit_matrix

    torch.manual_seed(0)
    erase, anchor, keep = (torch.randn(n, 32, dtype=torch.float64) for n in (5, 5, 12))
    weight = torch.randn(24, 32, dtype=torch.float64)
    edited = weight @ edit_matrix(erase, anchor, keep, preserve_lambda=1.0, ridge=1e-9)
    assert torch.allclose(erase @ edited.T, anchor @ weight.T, atol=1e-5)
    assert torch.allclose(keep @ edited.T, keep @ weight.T, atol=1e-5)
    # more weight on staying put: the edit shrinks toward the old weights
    timid = weight @ edit_matrix(erase, anchor, keep, preserve_lambda=1.0, ridge=1e4)
    assert (timid - weight).norm() < 0.1 * (edited - weight).norm()


def test_uce_aligns_prompts_at_their_first_difference_and_end_of_text():
    from erase.methods.uce import aligned_starts

    ids = lambda *tokens: torch.tensor([*tokens] + [9] * (8 - len(tokens)))  # noqa: E731  (9 = EOS, padding)
    assert aligned_starts(ids(1, 5, 9), ids(1, 9), 3, 2) == (1, 0)  # "nudity" -> "": nudity~BOS, EOS~EOS
    assert aligned_starts(ids(1, 2, 3, 4, 9), ids(1, 2, 7, 4, 9), 5, 5) == (2, 2)  # one word swapped
    assert aligned_starts(ids(1, 2, 3, 9), ids(1, 2, 6, 7, 9), 4, 5) == (2, 3)  # the anchor is a word longer


def test_uce_edits_only_cross_attention_keys_and_values(stack):
    from erase.methods.uce import edit_rows, preserved_rows

    bundle, task, forget, retain = stack
    with torch.no_grad():
        erase, anchor = (rows.float() for rows in edit_rows(bundle.adapter, forget, "cpu"))
        keep = preserved_rows(bundle.adapter, retain, "cpu").float()
        old_erase, target, old_keep = (kv_outputs(bundle.denoiser, rows) for rows in (erase, anchor, keep))
    assert (len(erase), len(keep)) == (9, 18)

    def distances(model):
        """Per projection: |erased outputs - anchors' outputs| and |retained outputs - before|, relative."""
        with torch.no_grad():
            new_erase, new_keep = kv_outputs(model, erase), kv_outputs(model, keep)
        return {n: ((new_erase[n] - target[n]).norm() / (old_erase[n] - target[n]).norm(),
                    (new_keep[n] - old_keep[n]).norm() / old_keep[n].norm()) for n in target}

    model, method = unlearned(stack, "uce", steps=0, ridge=1e-6)
    kv = {n for n, _ in model.named_parameters() if ".attn2.to_k." in n or ".attn2.to_v." in n}
    assert changed_tensors(bundle.denoiser, model) == kv and len(kv) == 8  # all else is bit-identical
    report = method.run_report()
    assert report["edited_tensors"] == 8 and report["edit_seconds"] < 5 and report["erase_rows"] == 9
    # the erased prompts' key/value outputs land on their anchors', the retained prompts' stay put
    assert set(distances(model)) == kv
    assert all(erased < 0.01 and kept < 0.01 for erased, kept in distances(model).values())
    # the default ridge keeps the weights nearer the old ones: part of the way, the retained prompts nearly kept
    model, _ = unlearned(stack, "uce", steps=0)
    assert all(erased < 0.6 and kept < 0.05 for erased, kept in distances(model).values())


def test_ca_trains_keys_and_values_toward_the_anchor_prediction(stack):
    """CA's loss, the concept prompt's prediction vs the anchor prompt's on the same noisy image, falls; only
    attn2.to_k/to_v move."""
    bundle, task, forget, _ = stack

    batch = {"x": forget.images, "input_ids": forget.input_ids, "anchor_ids": forget.anchor_ids}

    def gap(model):
        torch.manual_seed(3)
        with torch.no_grad():
            return task.relabel_loss(model, batch).mean().item()

    model, method = unlearned(stack, "ca", steps=12, lr=3e-3)
    assert method.objective == "relabel" and method.forget_images == "anchor"
    assert changed_tensors(bundle.denoiser, model) == {n for n, _ in model.named_parameters()
                                                       if ".attn2.to_k." in n or ".attn2.to_v." in n}
    assert gap(model) < 0.7 * gap(bundle.denoiser)


def test_ca_forget_images_show_the_anchors(stack, tmp_path, monkeypatch):
    """concept_data draws CA's forget images for the anchor prompts, with the forget prompts' token ids."""
    from erase.config import RunConfig
    from erase.data.concept_sets import concept_data
    from erase.data.prompts import ConceptPrompts
    from erase.evaluate.text import generate_for_prompts

    bundle = stack[0]
    prompts = ConceptPrompts("nudity", NUDITY, ANCHORS, RETAIN, NUDITY, RETAIN, "test")
    config = RunConfig(command="concept", model="tiny", method="ca", target=["nudity"], seed=0,
                       evaluate={"batch_size": 8})
    monkeypatch.setitem(bundle.recipe.train, "forget_images", 2)
    monkeypatch.setitem(bundle.recipe.train, "retain_images", 3)
    forget, _ = concept_data(bundle, prompts, config, tmp_path, forget_images="anchor")
    assert torch.equal(forget.input_ids, bundle.adapter.tokenize(NUDITY))
    from erase.data.concept_sets import DATA_SEED_OFFSET
    from erase.sample import to_uint8

    drawn, _ = generate_for_prompts(bundle.pipeline, ANCHORS, 1, DATA_SEED_OFFSET, bundle.recipe.sampling)
    assert torch.equal(forget.images, to_uint8(drawn))
    assert json.loads((tmp_path / "data" / "prompts.json").read_text())["forget_images"] == "anchor"


def test_fmn_finds_the_concept_tokens():
    from erase.methods.fmn import concept_positions

    from erase.models.tokenizer import build_tokenizer, token_ids

    tokenizer = build_tokenizer(__import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "t", 12)
    batch = {"input_ids": token_ids(tokenizer, ["a red triangle on a striped background", "nudity"]),
             "anchor_ids": token_ids(tokenizer, ["a red square on a striped background", ""])}
    positions = concept_positions(batch, set(tokenizer.all_special_ids))
    assert positions[0].nonzero().flatten().tolist() == [3]  # BOS a red *triangle*
    assert positions[1].nonzero().flatten().tolist() == [1]
    del batch["anchor_ids"]
    batch["concept_ids"] = token_ids(tokenizer, ["triangle", "nudity"])
    assert concept_positions(batch, set(tokenizer.all_special_ids))[0].nonzero().flatten().tolist() == [3]


def test_fmn_attention_maps_are_the_layers_own(stack):
    """The recorded probabilities reproduce each cross-attention layer's output through its values."""
    from erase.methods.fmn import cross_attention_probabilities

    bundle = stack[0]
    layer = next(m for n, m in bundle.denoiser.named_modules() if n.endswith("attn2"))
    hidden, context = torch.randn(2, 10, layer.query_dim), torch.randn(2, 77, layer.cross_attention_dim)
    with torch.no_grad():
        probs = cross_attention_probabilities(layer, hidden, context)
        values = layer.to_v(context).view(2, 77, layer.heads, -1).transpose(1, 2)
        mixed = (probs @ values).transpose(1, 2).reshape(2, 10, -1)
        assert torch.allclose(layer.to_out[0](mixed), layer(hidden, encoder_hidden_states=context), atol=1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(2, layer.heads, 10), atol=1e-5)


def test_fmn_lowers_the_concept_tokens_attention_with_cross_attention_weights_only(stack):
    from erase.methods.fmn import attention_loss, concept_positions

    bundle, task, forget, _ = stack
    special = set(bundle.adapter.tokenizer.all_special_ids)
    batch = {"x": forget.images, "input_ids": forget.input_ids, "anchor_ids": forget.anchor_ids}
    positions = concept_positions(batch, special)

    def attention(model):
        torch.manual_seed(5)
        with torch.no_grad():
            return attention_loss(model, task, batch, positions).item()

    model, method = unlearned(stack, "fmn", steps=10, lr=1e-2)
    changed = changed_tensors(bundle.denoiser, model)
    assert changed and all(".attn2." in n for n in changed)
    assert attention(model) < 0.7 * attention(bundle.denoiser)
    assert method.run_report()["selected_fraction"] < 0.2


def test_methods_that_need_cross_attention_refuse_a_class_conditional_model(cli, workdir):
    import yaml

    (workdir / "tiny-ddpm.yaml").write_text(yaml.safe_dump(TINY_DDPM))
    before = files_under(workdir)
    for method in ("uce", "ca", "fmn"):
        code, _, err = cli("class", "--model", "tiny-ddpm.yaml", "--forget", "3", "--init", "random", "--method",
                           method, "--out", "X")
        assert code == 2 and "cross-attention" in err and len(err.strip().splitlines()) == 1, err
    assert files_under(workdir) == before
    code, _, err = cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--method", "fmn",
                       "--objective", "ga", "--out", "X")
    assert code == 2 and "fmn has its own loss" in err


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny random CLIPModel folder with the project's offline tokenizer."""
    from transformers import CLIPConfig, CLIPModel

    from erase.models.tokenizer import BOS, EOS, write_tokenizer

    folder = write_tokenizer(tmp_path_factory.mktemp("clip") / "clip", 77)
    vocab = json.loads((folder / "vocab.json").read_text())
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, bos_token_id=vocab[BOS], eos_token_id=vocab[EOS],
                pad_token_id=vocab[EOS])
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                  patch_size=8)
    torch.manual_seed(1)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "CLIPImageProcessor"}))
    return folder


def test_clip_score_is_the_clipped_cosine_of_each_image_with_its_prompt(clip_folder):
    import torch.nn.functional as F

    from erase.evaluate.clip_score import ClipScorer

    scorer = ClipScorer(clip_folder)
    torch.manual_seed(0)
    images, index, prompts = torch.rand(6, 3, 16, 16) * 2 - 1, torch.tensor([0, 0, 1, 1, 2, 2]), RETAIN
    with torch.no_grad():
        tokens = scorer.tokenizer(prompts, padding=True, return_tensors="pt")
        text = F.normalize(scorer.model.get_text_features(**tokens).pooler_output, dim=-1)
        image = F.normalize(scorer.model.get_image_features(pixel_values=scorer.pixels(images)).pooler_output, dim=-1)
    cosine = (image * text[index]).sum(-1)
    assert torch.allclose(scorer.scores(images, prompts, index), 100 * cosine.clamp_min(0), atol=1e-4)
    assert scorer.pixels(images).shape == (6, 3, 32, 32)


def test_concept_run_with_clip_scores_the_retained_prompts(cli, workdir, clip_folder):
    code, _, err = cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--method", "uce",
                       "--clip", clip_folder, "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    assert report["steps"] == 0 and report["method_report"]["edited_tensors"] == 8
    assert report["clip"]["model"] == str(clip_folder.resolve())
    for which in ("original", "unlearned"):
        metrics = report["metrics"][which]
        assert 0 <= metrics["clip_score"] <= 100 and metrics["judge"] == "nudenet"
        assert metrics["clip_score_images"] == metrics["eval_prompts"]["retain"] * metrics["images_per_prompt"]
    # without --clip the score is skipped, and EVAL.json says why
    code, _, err = cli("concept", "--prompt", "van gogh style", "--init", "random", "--tiny", "--method", "uce",
                       "--out", "plain")
    assert code == 0, err
    report = json.loads((workdir / "plain" / "EVAL.json").read_text())
    assert "--clip DIR" in report["clip"]["skipped"] and "clip_score" not in report["metrics"]["unlearned"]


def test_uce_with_no_steps_reads_prompts_only_and_draws_no_images(cli, workdir, stack):
    # the edit from token ids alone equals the edit from sets that also carry images
    bundle, task, forget, retain = stack
    bare = (dataclasses.replace(forget, images=None), dataclasses.replace(retain, images=None))
    with_images, _ = unlearned(stack, "uce", steps=0)
    without, _ = unlearned((bundle, task, *bare), "uce", steps=0)
    assert not changed_tensors(with_images, without)
    # so a run with no steps draws none (the attack draws them when it needs them); --steps N draws and keeps them
    code, _, err = cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--method", "uce", "--out", "bare")
    assert code == 0, err
    assert json.loads((workdir / "bare" / "EVAL.json").read_text())["data"] == {"forget_images": 0, "retain_images": 0}
    assert sorted(p.name for p in (workdir / "bare" / "data").iterdir()) == ["prompts.json"]
    code, _, err = cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--method", "uce", "--steps", "1",
                       "--out", "tuned")
    assert code == 0, err
    drawn = json.loads((workdir / "tuned" / "EVAL.json").read_text())["data"]
    assert drawn["forget_images"] > 0 and drawn["retain_images"] > 0
    assert (workdir / "tuned" / "data" / "retain.safetensors").is_file()


@pytest.mark.parametrize("make, words", [
    (lambda folder: folder / "absent", "no such folder"),
    (lambda folder: folder.parent, "cannot read config.json"),
])
def test_bad_clip_folder_is_refused_before_anything_is_written(cli, workdir, clip_folder, make, words):
    before = files_under(workdir)
    code, _, err = cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--method", "uce", "--clip",
                       make(clip_folder), "--out", "X")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert files_under(workdir) == before


def test_list_shows_the_baselines(cli):
    code, out, _ = cli("list")
    assert code == 0
    for line in ("  uce ", "  ca ", "  fmn ", "  cross-attn-kv "):
        assert line in out
