"""`erase attack`: each attack succeeds on the original and can fail, it tells a hidden class from an erased one,
its figures are deterministic, and the command writes attacks.json, EVAL.json's robustness block, SUMMARY.md's
section, the plot and `erase compare` columns; bad input is one line, exit 2, nothing written.

The attacks are judged on the real ddpm-digits with three stand-ins for the run's models: the original; a
"hidden" model, the original with class 3's embedding overwritten by class 5's (it draws no 3 from its label,
but its weights still can); and random weights of the same architecture, which cannot draw a 3 at all.
"""
from __future__ import annotations

import copy
import json

import pytest
import yaml

from erase.attacks import ATTACKS, attack_module, attack_settings
from tests.conftest import TINY_DDPM, files_under

SAMPLES = 8  # judged samples per budget: the assertions below hold with a wide margin


@pytest.fixture(scope="module")
def digits():
    """Subjects on ddpm-digits forgetting 3: original, hidden (as `unlearned`) and random (as `reference`)."""
    import torch

    from erase.attacks.subjects import Subjects
    from erase.config import RunConfig, load_recipe
    from erase.data.class_sets import training_data
    from erase.evaluate.generator import make_judges
    from erase.models import load_generator
    from erase.tasks.denoising import denoising_task

    recipe = load_recipe("ddpm-digits")
    config = RunConfig(command="class", model="ddpm-digits", method="test", target=["3"],
                       evaluate=dict(recipe.evaluate))
    original = load_generator(recipe)
    hidden = copy.deepcopy(original)
    with torch.no_grad():
        table = hidden.denoiser.class_embedding.weight
        table[3] = table[5]
    torch.manual_seed(0)
    random = load_generator(recipe, init="random")
    (forget_set, retain_set), _ = training_data(recipe, config, [3])
    return Subjects(None, config, recipe, [3], {"original": original, "unlearned": hidden, "reference": random},
                    denoising_task(original), forget_set, retain_set, make_judges(recipe, config), {})


def budgets(name, **given):
    return attack_settings([name], "ddpm", {k: str(v) for k, v in given.items()})[name]


def success(result, which):
    return [row[which]["success"] for row in result["budgets"]]


def test_guidance_finds_the_class_on_the_original_and_not_where_it_is_hidden(digits):
    from erase.attacks import guidance
    from erase.attacks.report import with_gaps

    subjects = copy.copy(digits)  # without a reference (the gap against one: the command's test below)
    subjects.model_names = ("original", "unlearned")
    result = with_gaps(guidance.run(subjects, budgets("guidance", guidance_scales="1,5", guidance_retain_samples=0,
                                                      guidance_forget_samples=SAMPLES)))
    assert min(success(result, "original")) >= 0.8
    assert max(success(result, "unlearned")) <= 0.1  # the label no longer draws it: looks erased
    assert all(row["gap"] is None and "reference" not in row for row in result["budgets"])


def test_embedding_attack_works_on_the_original_finds_the_hidden_class_and_fails_without_one(digits):
    from erase.attacks import embedding

    result = embedding.run(digits, budgets("embedding", embedding_steps=15, embedding_lr=0.1, embedding_images=8,
                                           embedding_batch_size=8, embedding_samples=SAMPLES))
    assert success(result, "original") >= [0.9]  # the check that the attack works
    assert success(result, "unlearned") >= [0.8]  # hidden, not erased: the weights still draw it
    assert success(result, "reference") <= [0.1]  # nothing to find


def test_relearning_brings_a_hidden_class_back_from_five_images_but_not_from_retain_data(digits):
    from erase.attacks import relearn

    subjects = copy.copy(digits)
    subjects.model_names = ("unlearned",)
    result = relearn.run(subjects, budgets("relearn", relearn_steps=6, relearn_images=5, relearn_batch_size=8,
                                           relearn_samples=SAMPLES))
    steps = result["steps_to_relearn"]
    assert result["before"]["unlearned"]["success"] <= 0.1
    assert steps["retain"] == {"unlearned": None}  # fine-tuning on the retain data alone: still hidden
    assert steps["k=5"] == {"unlearned": 6}  # five images of 3 bring it back within six steps
    assert [row["data"] for row in result["budgets"]] == ["retain", "k=5"]


def test_attacks_are_deterministic(digits, monkeypatch):
    from erase.attacks import embedding

    monkeypatch.setenv("ERASE_NO_CACHE", "1")
    values = budgets("embedding", embedding_steps=2, embedding_images=2, embedding_batch_size=2, embedding_samples=2)
    assert embedding.attack_curve(digits, "unlearned", values) == embedding.attack_curve(digits, "unlearned", values)


# -- the command, end to end on a tiny random class run (its retrained reference trains in seconds) --
TINY_BUDGETS = ["--set", "guidance_scales=1,3", "--set", "guidance_forget_samples=4", "--set",
                "guidance_retain_samples=1", "--set", "relearn_steps=1,2", "--set", "relearn_images=1", "--set",
                "relearn_samples=4", "--set", "embedding_steps=2", "--set", "embedding_images=4", "--set",
                "embedding_samples=4", "--set", "embedding_batch_size=4"]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """A tiny class run, attacked once: (folder, EVAL.json before the attack, the attack's stdout)."""
    from erase.cli import main

    root = tmp_path_factory.mktemp("attack")
    (root / "tiny-ddpm.yaml").write_text(yaml.safe_dump(TINY_DDPM))
    run = root / "run"
    assert main(["class", "--model", str(root / "tiny-ddpm.yaml"), "--forget", "3", "--init", "random",
                 "--out", str(run)]) == 0
    before = json.loads((run / "EVAL.json").read_text())
    assert main(["attack", "--run", str(run), *TINY_BUDGETS]) == 0
    return run, before


def test_attack_writes_attacks_json_and_the_robustness_block(attacked):
    run, before = attacked
    full = json.loads((run / "attacks.json").read_text())
    report = json.loads((run / "EVAL.json").read_text())
    assert {k: v for k, v in report.items() if k != "robustness"} == before  # nothing else changes
    block = report["robustness"]
    assert list(block["attacks"]) == list(full["attacks"]) == list(ATTACKS)
    assert block["attacks"]["guidance"]["settings"]["guidance_scales"] == [1.0, 3.0]
    for name, result in block["attacks"].items():
        for row in result["budgets"]:
            assert row["gap"] == pytest.approx(row["unlearned"] - row["reference"]), (name, row)
            assert 0 <= row["original"] <= 1
    assert block["worst_gap"]["gap"] == max(row["gap"] for r in block["attacks"].values() for row in r["budgets"])
    assert set(block["attacks"]["relearn"]["steps_to_relearn"]) == {"retain", "k=1"}
    assert full["reference"]["steps"] == TINY_DDPM["pretrain"]["steps"]  # the `retrain` method's reference


def test_attack_writes_summary_section_plot_and_compare_columns(attacked, workdir, cli):
    run, _ = attacked
    summary = (run / "SUMMARY.md").read_text()
    assert "## Robustness: does it stay forgotten?" in summary and "### embedding attack" in summary
    assert "![robustness](plots/robustness.png)" in summary and (run / "plots" / "robustness.png").stat().st_size
    code, _, err = cli("compare", run, "--out", "cmp")
    assert code == 0, err
    table = (workdir / "cmp" / "compare.md").read_text()
    for title in ("UA guidance 1", "UA guidance 3", "relearn steps (k=1)", "embedding ASR", "worst attack gap"):
        assert title in table
    rows = [line for line in table.splitlines() if "| class 3 |" in line]
    assert [r.split(" | ")[2] for r in rows] == ["- (no unlearning)", "- (retrained reference)", "salun"]


@pytest.mark.parametrize("argv, words", [
    (["--run", "nowhere"], "run folder nowhere does not exist"),
    (["--run", "."], "is not a run folder (no config.yaml)"),
    (["--run", "{run}", "--attacks", "guidance,jailbreak"], "unknown attack 'jailbreak': use one or more of "
                                                            "guidance, relearn, embedding"),
    (["--run", "{run}", "--set", "guidance_scales=1,-2"], "guidance_scales=1,-2 (--set): guidance_scales must be"),
    (["--run", "{run}", "--attacks", "guidance", "--set", "relearn_steps=5"], "unknown setting 'relearn_steps' for "
                                                                              "attacks guidance"),
    (["--run", "{run}", "--set", "relearn_steps=10,10"], "relearn_steps=10,10 (--set)"),
])
def test_bad_input_is_one_line_and_writes_nothing(attacked, workdir, cli, argv, words):
    run, _ = attacked
    before = files_under(run) + files_under(workdir)
    code, _, err = cli("attack", *[a.format(run=run) for a in argv])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert files_under(run) + files_under(workdir) == before


def test_an_unfinished_run_is_refused(attacked, workdir, cli):
    run, _ = attacked
    unfinished = workdir / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((run / "config.yaml").read_text())
    code, _, err = cli("attack", "--run", unfinished)
    assert code == 2 and "is incomplete (no EVAL.json)" in err and "--resume" in err


@pytest.fixture(scope="module")
def judged(attacked):
    """The tiny class run's model judged by `erase eval --model` against its original saved as a model folder,
    then attacked: (the eval run's folder, the original's folder)."""
    import torch

    from erase.cli import main
    from erase.config import load_recipe
    from erase.models import load_generator

    run, _ = attacked
    original = run.parent / "original"
    torch.manual_seed(0)  # the class run's --init random original (seed 0)
    load_generator(load_recipe(str(run.parent / "tiny-ddpm.yaml")), init="random").save(original)
    folder = run.parent / "judged"
    assert main(["eval", "--model", str(run / "model"), "--original", str(original), "--forget", "3", "--samples",
                 "1", "--forget-samples", "2", "--out", str(folder)]) == 0
    assert main(["attack", "--run", str(folder), *TINY_BUDGETS]) == 0
    return folder, original


def test_an_eval_run_is_attacked_as_the_run_of_its_model(attacked, judged):
    """The eval run's original, judged model and the cached retrained reference are the class run's three models:
    every figure of every attack and budget is the class run's."""
    run, _ = attacked
    folder, _ = judged
    ours, theirs = (json.loads((f / "attacks.json").read_text()) for f in (run, folder))
    assert theirs["reference"]["cached"] and theirs["reference"]["steps"] == ours["reference"]["steps"]
    assert list(theirs["attacks"]) == list(ATTACKS)
    for name in ATTACKS:
        for mine, judged_row in zip(ours["attacks"][name]["budgets"], theirs["attacks"][name]["budgets"]):
            assert {k: judged_row[k] for k in ("budget", *MODELS_ATTACKED)} == \
                {k: mine[k] for k in ("budget", *MODELS_ATTACKED)}, name
    report = json.loads((folder / "EVAL.json").read_text())
    assert report["robustness"]["worst_gap"] == json.loads((run / "EVAL.json").read_text())["robustness"]["worst_gap"]
    assert "## Robustness: does it stay forgotten?" in (folder / "SUMMARY.md").read_text()


MODELS_ATTACKED = ("original", "unlearned", "reference")


@pytest.mark.parametrize("change, words", [
    ({"model": ""}, "does not name the original (--original)"),
    ({"extra": {"kind": "class-conditional"}}, "does not name the judged model (--model)"),
    ({"model": "{root}/gone"}, "the eval run's original: unknown model '{root}/gone'"),
    ({"extra": {"unlearned": "{root}/gone", "kind": "class-conditional"}}, "the eval run's judged model: unknown "
                                                                            "model '{root}/gone'"),
], ids=["no original", "no judged model", "original gone", "judged model gone"])
def test_a_broken_eval_run_is_refused(judged, workdir, cli, change, words):
    folder, original = judged
    broken = workdir / "broken"
    broken.mkdir()
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config.update({k: yaml.safe_load(yaml.safe_dump(v).replace("{root}", str(workdir))) for k, v in change.items()})
    (broken / "config.yaml").write_text(yaml.safe_dump(config))
    (broken / "EVAL.json").write_text((folder / "EVAL.json").read_text())
    before = files_under(workdir)
    code, _, err = cli("attack", "--run", broken)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and words.format(root=workdir) in lines[0], err
    assert files_under(workdir) == before


# one bad value for every attack budget (test_every_attack_setting_has_a_bad_value keeps it complete)
BAD = {"guidance_scales": "1,x", "guidance_forget_samples": "0", "guidance_retain_samples": "-1",
       "relearn_steps": "0,5", "relearn_images": "2.5", "relearn_lr": "0", "relearn_batch_size": "0",
       "relearn_samples": "none", "embedding_steps": "", "embedding_lr": "-1", "embedding_batch_size": "x",
       "embedding_images": "0", "embedding_samples": "1e400", "embedding_tokens": "0"}


def test_every_attack_setting_has_a_bad_value_and_its_default_is_allowed():
    from erase.errors import UserError

    declared = {s.name: s for name in ATTACKS for s in attack_module(name).settings}
    assert set(declared) == set(BAD)
    for name, setting in declared.items():
        assert setting.read(setting.default) == setting.default, name
        with pytest.raises(UserError, match=f"^{name}=.* \\(--set\\): {name} must be "):
            attack_settings(list(ATTACKS), "ddpm", {name: BAD[name]})
    assert attack_settings(["guidance"], "sd", {})["guidance"]["guidance_scales"] == (3.0, 7.5, 12.0)


def test_free_tokens_follow_the_words_of_non_empty_prompts_only():
    import torch

    from erase.attacks.concepts import FreeTokenEmbedding

    table = torch.nn.Embedding(10, 3)
    free = torch.nn.Parameter(torch.full((2, 3), 7.0))
    bos, eos = 8, 9
    ids = torch.tensor([[bos, 1, 2, eos, eos, eos, eos], [bos, eos, eos, eos, eos, eos, eos], [bos, 1, 2, 3, 4, 5, eos]])
    out = FreeTokenEmbedding(table, free, eos)(ids)
    is_free = (out == 7.0).all(-1)
    assert is_free.tolist() == [[False, False, False, False, True, True, False], [False] * 7, [False] * 7]
    assert torch.equal(out[~is_free], table(ids)[~is_free])


def test_a_concept_run_is_attacked_against_the_model_retrained_without_the_concept(tmp_path, monkeypatch, cli):
    """t2i-shapes (the tiny random stack): a --robust run (free tokens in its inner attack), then free tokens and
    the guidance sweep against it, the original and the reference: the tiny model retrained from scratch by its
    pretrain recipe (4 steps for --tiny) on the shapes world without a single triangle."""
    from erase.data.shapes import ATTRIBUTES
    from erase.runs.reference import without_concept

    monkeypatch.chdir(tmp_path)
    code, _, err = cli("concept", "--model", "t2i-shapes", "--prompt", "triangle", "--init", "random", "--tiny",
                       "--steps", "1", "--images-per-prompt", "1", "--robust", "1", "--out", "run")
    assert code == 0, err
    assert {"attack_loss", "attacked_forget_loss"} <= set(json.loads((tmp_path / "run" / "history.jsonl")
                                                                     .read_text().splitlines()[0]))
    code, out, err = cli("attack", "--run", "run", "--attacks", "guidance,embedding", "--set", "guidance_scales=3",
                         "--set", "guidance_forget_samples=12", "--set", "guidance_retain_samples=0", "--set",
                         "embedding_steps=1", "--set", "embedding_images=2", "--set", "embedding_samples=12",
                         "--set", "embedding_batch_size=2")
    assert code == 0, err
    block = json.loads((tmp_path / "run" / "EVAL.json").read_text())["robustness"]
    assert list(block["attacks"]) == ["guidance", "embedding"]
    assert block["reference"]["steps"] == 4 and block["reference"]["left_out"] == "triangle"
    rows = [row for result in block["attacks"].values() for row in result["budgets"]]
    assert all(row["gap"] == pytest.approx(row["unlearned"] - row["reference"]) for row in rows)
    assert block["worst_gap"]["gap"] == max(row["gap"] for row in rows)

    dataset, count = without_concept("triangle")  # what the reference trained on: the world minus the triangles
    from erase.data.shapes import caption_labels, load_shapes

    assert count == len(load_shapes("train")) * 3 // 4
    tokenized = dataset(type("Words", (), {"tokenize": staticmethod(lambda captions: captions)}))
    assert len(tokenized) == count and not any(caption_labels(c)[0] == ATTRIBUTES["shape"].index("triangle")
                                               for c in tokenized.input_ids)


def test_an_eval_run_of_a_text_to_image_model_is_attacked_like_a_concept_run(tmp_path, monkeypatch, cli):
    """A text-to-image model unlearned elsewhere, judged by `erase eval --model --original --prompt`, is attacked
    as a concept run: free tokens and the guidance sweep on its original, the judged model and the reference
    retrained without the concept; the figures are those of the concept run whose model it is."""
    import torch

    from erase.commands.concept import concept_recipe
    from erase.models import load_generator

    monkeypatch.chdir(tmp_path)
    assert cli("concept", "--model", "t2i-shapes", "--prompt", "triangle", "--init", "random", "--tiny", "--steps",
               "1", "--images-per-prompt", "1", "--out", "run")[0] == 0
    torch.manual_seed(0)  # the concept run's --init random original (seed 0)
    load_generator(concept_recipe("t2i-shapes", True, "random"), init="random").save(tmp_path / "original")
    code, _, err = cli("eval", "--model", "run/model", "--original", "original", "--prompt", "triangle",
                       "--images-per-prompt", "1", "--out", "judged")
    assert code == 0, err
    budgets = ["--attacks", "guidance,embedding", "--set", "guidance_scales=3", "--set", "guidance_forget_samples=12",
               "--set", "guidance_retain_samples=0", "--set", "embedding_steps=1", "--set", "embedding_images=2",
               "--set", "embedding_samples=12", "--set", "embedding_batch_size=2"]
    for folder in ("run", "judged"):
        code, _, err = cli("attack", "--run", folder, *budgets)
        assert code == 0, err
    ours, theirs = (json.loads((tmp_path / f / "attacks.json").read_text()) for f in ("run", "judged"))
    assert theirs["reference"]["left_out"] == "triangle" and theirs["reference"]["cached"]
    for name in ("guidance", "embedding"):  # the embedding rows carry each model's attack loss: the same weights
        assert [{k: row[k] for k in ("budget", *MODELS_ATTACKED)} for row in theirs["attacks"][name]["budgets"]] == \
            [{k: row[k] for k in ("budget", *MODELS_ATTACKED)} for row in ours["attacks"][name]["budgets"]], name
