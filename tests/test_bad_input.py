"""Bad input: one line on stderr saying what is wrong, exit code 2, and nothing written."""
import pytest
from safetensors.torch import load_file, save_file

from tests.conftest import files_under

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def tiny_weights(tiny_recipe, workdir):
    """A complete tiny pipeline folder (random weights) that the tests then damage."""
    import torch

    from erase.config import load_recipe
    from erase.models import load_generator

    torch.manual_seed(0)
    bundle = load_generator(load_recipe(str(tiny_recipe)), init="random")
    folder = workdir / "weights"
    bundle.pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def _damage(folder, how):
    path = folder / WEIGHTS
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        return
    state = load_file(path)
    if how == "missing":
        state.pop(sorted(state)[0])
    elif how == "extra":
        state["surplus.weight"] = next(iter(state.values())).clone()
    elif how == "misshaped":
        key = sorted(state)[0]
        state[key] = state[key].flatten()[:-1].clone()
    save_file(state, path)


CLASS_CASES = [
    (["--model", "no-such-model", "--forget", "3"], "unknown model"),
    (["--forget", "3", "--method", "forget-it-all"], "unknown method"),
    (["--forget", "3", "--objective", "amnesia"], "unknown objective"),
    (["--forget", "3", "--params", "some"], "unknown parameter selection"),
    (["--forget", "3", "--set", "alpah=1"], "unknown setting 'alpah'"),
    (["--forget", "3", "--method", "partial", "--set", "fraction=2"],
     "fraction=2 (--set): fraction must be a number in (0, 1]"),
    (["--forget", "3", "--method", "partial", "--set", "partial_rule=biggest"], "partial_rule must be one of"),
    (["--forget", "3", "--method", "sfron", "--set", "gamma=1", "--set", "mask_ratio=0.5"],
     "unknown setting 'mask_ratio'"),
    (["--forget", "10"], "out of range"),
    (["--forget", "-1"], "out of range"),
    (["--forget", "three"], "unknown class 'three'"),
    (["--forget", "0,1"], "unknown class"),
    ([*sum((["--forget", str(i)] for i in range(10)), [])], "cannot forget every class"),
    ([], "nothing to forget"),
    (["--forget", "3", "--steps", "0"], "--steps must be a positive number"),
    (["--forget", "3", "--steps", "-5"], "--steps must be a positive number"),
    (["--forget", "3", "--steps", "ten"], "--steps must be a positive number"),
    (["--forget", "3", "--steps", "2.5"], "--steps must be a whole number"),
    (["--forget", "3", "--lr", "0"], "--lr must be a positive number"),
    (["--forget", "3", "--lr=-1e-4"], "--lr must be a positive number"),
    (["--forget", "3", "--lr", "nan"], "--lr must be a positive number"),
    (["--forget", "3", "--batch-size", "0"], "--batch-size must be a positive number"),
    (["--forget", "3", "--batch-size", "many"], "--batch-size must be a positive number"),
    (["--forget", "3", "--weights", "no/such/folder"], "no weights at"),
    (["--forget", "3", "--bogus-flag"], "unrecognized arguments"),
    (["--forget", "3", "--data", "no/such/folder"], "data folder no/such/folder does not exist"),
    (["--model", "dit-digits", "--forget", "ten"], "unknown class 'ten'"),
    (["--model", "dit-imagenet", "--forget", "golden retriver"], "did you mean 'golden retriever' (207)"),
    (["--model", "dit-imagenet", "--forget", "1000"], "out of range"),
    (["--model", "dit-imagenet", "--forget", "207", "--weights", "no/such/dit"], "no weights at no/such/dit"),
]


def _assert_clean_failure(result, words, workdir, before):
    code, out, err = result
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert words in lines[0], lines[0]
    assert "Traceback" not in err
    assert files_under(workdir) == before  # nothing written


@pytest.mark.parametrize("argv, words", CLASS_CASES, ids=[c[1] for c in CLASS_CASES])
def test_class_bad_input(cli, workdir, argv, words):
    before = files_under(workdir)
    _assert_clean_failure(cli("class", *argv), words, workdir, before)


@pytest.mark.parametrize("how, words", [("missing", "missing"), ("extra", "unexpected"),
                                        ("misshaped", "mis-shaped"), ("truncated", "corrupt or truncated")])
def test_damaged_weights(cli, workdir, tiny_recipe, tiny_weights, how, words):
    _damage(tiny_weights, how)
    before = files_under(workdir)
    result = cli("class", "--model", tiny_recipe, "--weights", tiny_weights, "--forget", "3")
    _assert_clean_failure(result, words, workdir, before)


def test_missing_dit_imagenet_weights_name_the_folder(cli, workdir, monkeypatch):
    monkeypatch.setenv("ERASE_MODELS", str(workdir / "models"))
    before = files_under(workdir)
    _assert_clean_failure(cli("class", "--model", "dit-imagenet", "--forget", "golden retriever"),
                          f"no weights at {workdir / 'models' / 'dit-imagenet'}", workdir, before)


def test_damaged_imagenet_probe_is_refused_before_any_work(cli, workdir):
    (workdir / "probe.safetensors").write_bytes(b"not a safetensors file")
    before = files_under(workdir)
    result = cli("class", "--model", "dit-imagenet", "--forget", "207", "--init", "random", "--probe",
                 "probe.safetensors")
    _assert_clean_failure(result, "corrupt or truncated", workdir, before)


def test_not_an_erase_folder(cli, workdir):
    (workdir / "some-folder").mkdir()
    before = files_under(workdir)
    _assert_clean_failure(cli("class", "--model", "some-folder", "--forget", "3"), "not an erase model folder",
                          workdir, before)


def test_existing_output_folder_is_refused(cli, workdir, tiny_recipe):
    (workdir / "out").mkdir()
    (workdir / "out" / "keep.txt").write_text("mine")
    before = files_under(workdir)
    result = cli("class", "--model", tiny_recipe, "--init", "random", "--forget", "3", "--out", "out")
    _assert_clean_failure(result, "already exists", workdir, before)


def test_overwrite_replaces_output_folder(cli, workdir, tiny_recipe):
    (workdir / "out").mkdir()
    (workdir / "out" / "keep.txt").write_text("old")
    code, _, err = cli("class", "--model", tiny_recipe, "--init", "random", "--forget", "3", "--steps", "1",
                       "--out", "out", "--overwrite")
    assert code == 0, err
    assert not (workdir / "out" / "keep.txt").exists() and (workdir / "out" / "EVAL.json").is_file()


SAMPLE_CASES = [
    (["--classes", "0-12"], "out of range"),
    (["--classes", "5-2"], "runs backwards"),
    (["--classes", "1,,2"], "empty entry"),
    (["--per-class", "0"], "--per-class must be a positive number"),
    (["--out", "grid.jpg"], "must name a .png"),
    (["--model", "nothing-here"], "unknown model"),
    (["--model", "sd-v1-4", "--init", "random", "--prompts", " "], "empty prompt"),
    (["--model", "sd-v1-4", "--init", "random"], "needs prompts"),
    (["--model", "sd-v1-4", "--init", "random", "--prompts-file", "none.txt"], "does not exist"),
    (["--prompts", "a red triangle"], "is class-conditional"),
]


@pytest.mark.parametrize("argv, words", SAMPLE_CASES, ids=[c[1] for c in SAMPLE_CASES])
def test_sample_bad_input(cli, workdir, argv, words):
    before = files_under(workdir)
    _assert_clean_failure(cli("sample", *argv), words, workdir, before)


def test_pretrain_refuses_unknown_and_real_models(cli, workdir):
    before = files_under(workdir)
    _assert_clean_failure(cli("pretrain", "nope"), "unknown model", workdir, before)
    _assert_clean_failure(cli("pretrain", "ddpm-cifar10"), "pretrain ddpm-cifar10 --data DIR", workdir, before)
    _assert_clean_failure(cli("pretrain", "digits-cnn", "--rescore"), "--rescore needs an embedded generator",
                          workdir, before)


@pytest.fixture
def unfinished_run(workdir):
    """A run folder that was interrupted: config.yaml, no EVAL.json."""
    folder = workdir / "half"
    folder.mkdir()
    (folder / "config.yaml").write_text("command: class\nmodel: ddpm-digits\nmethod: ga\ntarget: ['3']\n")
    return folder


@pytest.fixture
def classify_run(workdir):
    folder = workdir / "cnn-run"
    folder.mkdir()
    (folder / "config.yaml").write_text("command: classify\nmodel: digits-cnn\nmethod: ft\ntarget: ['class:3']\n")
    (folder / "EVAL.json").write_text("{}")
    return folder


EVAL_CASES = [
    (["--run", "no/such/run"], "does not exist"),
    (["--run", "."], "is not a run folder"),
    (["--run", "half"], "is incomplete"),
    (["--run", "cnn-run"], "classifier runs are scored exactly"),
    (["--run", "half", "--samples", "x"], "invalid int value"),
    (["--samples", "3"], "--run"),
    (["--run", "half", "--fid-mode", "fancy"], "invalid choice"),
]


@pytest.mark.parametrize("argv, words", EVAL_CASES, ids=[c[1] for c in EVAL_CASES])
def test_eval_bad_input(cli, workdir, unfinished_run, classify_run, argv, words):
    before = files_under(workdir)
    _assert_clean_failure(cli("eval", *argv), words, workdir, before)


def test_eval_bad_sample_count_and_inception_weights(cli, workdir, unfinished_run):
    (unfinished_run / "EVAL.json").write_text("{}")
    (unfinished_run / "model").mkdir()
    (unfinished_run / "model" / "keep").write_text("")
    before = files_under(workdir)
    _assert_clean_failure(cli("eval", "--run", "half", "--samples", "0"), "--samples must be a positive number",
                          workdir, before)
    _assert_clean_failure(cli("eval", "--run", "half", "--inception-weights", "nowhere.pt"), "does not exist",
                          workdir, before)


COMPARE_CASES = [
    (["no/such/run"], "does not exist"),
    (["half"], "no finished runs to compare"),
    (["."], "is not a run folder"),
    ([], "the following arguments are required"),
]


@pytest.mark.parametrize("argv, words", COMPARE_CASES, ids=[c[1] for c in COMPARE_CASES])
def test_compare_bad_input(cli, workdir, unfinished_run, argv, words):
    before = files_under(workdir)
    code, out, err = cli("compare", *argv, "--out", "cmp")
    err = "\n".join(line for line in err.splitlines() if not line.startswith("erase compare: skipping"))
    _assert_clean_failure((code, out, err), words, workdir, before)


def test_class_bad_inception_weights(cli, workdir):
    before = files_under(workdir)
    _assert_clean_failure(cli("class", "--forget", "3", "--inception-weights", "nowhere.pt"), "does not exist",
                          workdir, before)


CONCEPT_CASES = [
    (["--prompt", "", "--init", "random", "--tiny"], "--prompt is empty"),
    (["--prompt", "   ", "--init", "random", "--tiny"], "--prompt is empty"),
    (["--init", "random", "--tiny"], "--prompt is empty"),
    (["--prompt", "nudity"], "sd-v1-4: no weights at"),
    (["--prompt", "nudity", "--tiny"], "--tiny builds a tiny random"),
    (["--prompt", "nudity", "--model", "ddpm-digits"], "not a text-to-image model"),
    (["--prompt", "hexagon", "--model", "t2i-shapes"], "the shapes world has no concept 'hexagon'"),
    (["--prompt", "triangle", "--model", "t2i-shapes", "--anchor", "hexagon"],
     "--anchor 'hexagon': the anchor of the shape 'triangle' is another shape (circle, square, cross)"),
    (["--prompt", "triangle", "--model", "t2i-shapes", "--anchor", "triangle"], "is another shape"),
    (["--prompt", "red", "--model", "t2i-shapes", "--anchor", "square"], "the anchor of the colour 'red'"),
    (["--prompt", "nudity", "--init", "random", "--tiny", "--anchor", "  "], "--anchor is empty"),
    (["--prompt", "nudity", "--init", "random", "--tiny", "--method", "nope"], "unknown method"),
    (["--prompt", "nudity", "--init", "random", "--tiny", "--steps", "0"], "--steps must be a positive number"),
    (["--prompt", "nudity", "--init", "random", "--tiny", "--method", "amnesiac"], "a concept's forget data"),
    (["--prompt", "nudity", "--init", "random", "--tiny", "--method", "retrain"], "a concept's forget data"),
    (["--prompt", "nudity", "--weights", "no/such/sd"], "no weights at no/such/sd"),
    (["--prompt", "nudity", "--init", "random", "--tiny", "--method", "esd", "--set", "esd_prompts=all"],
     "esd_prompts=all (--set): esd_prompts must be one of concept, forget, anchor"),
    # prompts/nudity/ has no neutral.txt: ESD on the forget prompts has no concept-free prompt to steer from
    (["--prompt", "nudity", "--init", "random", "--tiny", "--method", "esd", "--set", "esd_prompts=forget"],
     "esd_prompts=forget needs each forget prompt without the concept"),
]


@pytest.mark.parametrize("argv, words", CONCEPT_CASES, ids=[c[1] for c in CONCEPT_CASES])
def test_concept_bad_input(cli, workdir, argv, words, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(workdir / "empty-hf-cache"))  # no SD weights in any cache
    before = files_under(workdir)
    _assert_clean_failure(cli("concept", *argv), words, workdir, before)


def test_missing_sd_weights_say_how_to_fetch_them(cli, workdir, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(workdir / "empty-hf-cache"))
    code, _, err = cli("concept", "--prompt", "nudity")
    assert code == 2 and "CompVis/stable-diffusion-v1-4" in err and "huggingface-cli download" in err
    assert "--init random --tiny" in err


def test_concept_without_forget_prompts(cli, workdir, monkeypatch):
    import erase.data.prompts as prompts

    (workdir / "prompts" / "my-concept").mkdir(parents=True)
    (workdir / "prompts" / "my-concept" / "forget.txt").write_text("\n   \n")
    monkeypatch.setattr(prompts, "PROMPTS_DIR", workdir / "prompts")
    before = files_under(workdir)
    result = cli("concept", "--prompt", "my concept", "--init", "random", "--tiny")
    _assert_clean_failure(result, "has no forget prompts", workdir, before)


def test_gradient_checkpointing_on_a_classifier_is_refused_before_any_work(cli, workdir):
    before = files_under(workdir)
    _assert_clean_failure(cli("classify", "--forget-class", "3", "--method", "ft", "--gradient-checkpointing"),
                          "does not support --gradient-checkpointing", workdir, before)
