"""`--steps auto`: the recipe's steps are a budget, a held-out check stops the run once the target is met within
the retained-accuracy guard, the best check is kept, a run resumes to the same end, `--steps N` is unchanged."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from erase.auto_steps import AutoStop, Target, auto_stop, budget, check_every
from erase.cli import main
from erase.methods import make_method
from erase.train import Interrupted, StepHook, TrainSettings, make_accelerator, unlearn
from tests.conftest import files_under
from tests.test_classify_run import TINY_CNN as CLASSIFY_CNN
from toy import InterruptAfter, RegressionTask, toy_data, toy_model


class Scripted:
    """A check that returns (ua, retained) from a script by step, and counts its calls."""

    def __init__(self, script: dict[int, tuple[float, float]]):
        self.script = script
        self.steps: list[int] = []
        self.step = 0

    def __call__(self, model):
        self.steps.append(self.step)
        return self.script[self.step]


class Tick(StepHook):
    """Tells the scripted check which step the model is at (the trainer checks after the step's update)."""

    def __init__(self, check: Scripted):
        self.check = check

    def after_step(self, model, step: int) -> None:
        self.check.step = step + 1


class ScriptedConfirmation(Scripted):
    """A confirmation (erase.tasks.checks.Confirmation) scripted by step: (retained,) on `retained_samples`."""

    retained_samples = 30

    def __call__(self, model, step: int = 0):
        assert step == self.step  # a confirmation is told its step (its seeds are new at every step)
        return super().__call__(model)

    def original(self, model):
        return self(model, 0)


def _train(steps: int, script=None, every: int = 2, checkpoint_dir=None, hooks=(), drop: float = 0.02,
           confirm=None):
    """The toy model after `steps` steps of relabel (fixed), or with a scripted AutoStop over that budget
    (and a scripted confirmation, when given)."""
    model = toy_model()
    auto, tick = None, ()
    if script is not None:
        check = Scripted(script)
        auto = AutoStop(check, Target("class", ua=0.99), steps, every, drop)
        tick = (Tick(check),)
        if confirm is not None:
            check.retained_samples, check.confirm = 10, ScriptedConfirmation(confirm)
            tick += (Tick(check.confirm),)
    settings = TrainSettings(steps=steps, lr=0.05, batch_size=4, progress=False)
    result = unlearn(model, RegressionTask(), make_method("relabel"), toy_data(8, 1), toy_data(8, 2), settings,
                     checkpoint_dir=checkpoint_dir, accelerator=make_accelerator(), hooks=tick + tuple(hooks),
                     auto=auto)
    return model, result


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_stops_at_the_first_check_that_meets_the_target_within_the_guard():
    # step 2 forgets but loses 10 points (guard 2): go on; step 4 forgets and keeps the retained score: stop
    script = {0: (0.0, 0.9), 2: (1.0, 0.8), 4: (1.0, 0.89), 6: (1.0, 0.9)}
    model, result = _train(10, script)
    auto = result.auto
    assert auto["stopped_at"] == auto["kept_step"] == 4 and auto["target_met"] and auto["guard_met"]
    assert not auto["compromise"] and [c["step"] for c in auto["checks"]] == [0, 2, 4]
    assert [r["step"] for r in result.history] == [0, 1, 2, 3, 4]  # step 0: the original's check
    assert result.history[0]["check_ua"] == 0.0 and result.history[2]["check_met"] is True
    assert "check_ua" not in result.history[1]
    assert _same(model, _train(4)[0])  # the checks change nothing in training: the fixed run's weights


def test_a_confirmation_with_more_retained_samples_must_hold_the_guard_too():
    # step 2: the check (10 samples) sees nothing lost, its 30 more samples see 10 points lost: go on.
    # step 4 misses the target (no confirmation drawn); step 6 meets it and the confirmation agrees: stop.
    script = {0: (0.0, 0.9), 2: (1.0, 0.9), 4: (0.5, 0.9), 6: (1.0, 0.9)}
    confirm = {0: (0.9,), 2: (0.7666,), 6: (0.9,)}
    model, result = _train(10, script, confirm=confirm)
    auto = result.auto
    assert auto["stopped_at"] == auto["kept_step"] == 6 and auto["guard_met"] and auto["confirmations"] == 2
    checks = {c["step"]: c for c in auto["checks"]}
    assert checks[0]["confirmed"] == pytest.approx(0.9)  # the original's pooled score, the guard's baseline
    assert checks[2]["confirmed"] == pytest.approx((10 * 0.9 + 30 * 0.7666) / 40)
    assert checks[2]["retained"] == 0.9 and checks[2]["guard"] is False and "confirmed" not in checks[4]
    assert result.history[2]["check_confirmed"] == pytest.approx(checks[2]["confirmed"])
    assert _same(model, _train(6)[0])


def test_the_pooled_score_decides_the_guard_when_the_check_alone_reads_a_drop():
    # step 2: the check's 10 samples read 10 points lost, the 40 pooled 0.25: within the guard, stop
    script = {0: (0.0, 0.9), 2: (1.0, 0.8), 4: (1.0, 0.9)}
    model, result = _train(4, script, confirm={0: (0.9,), 2: (0.93,)})
    assert result.auto["stopped_at"] == result.auto["kept_step"] == 2 and result.auto["guard_met"]
    assert result.auto["checks"][1]["confirmed"] == pytest.approx((10 * 0.8 + 30 * 0.93) / 40)


def test_keeps_the_best_compromise_and_flags_it_when_every_met_check_loses_too_much():
    script = {0: (0.0, 0.9), 2: (1.0, 0.5), 4: (0.5, 0.9), 6: (1.0, 0.7), 8: (1.0, 0.6), 10: (1.0, 0.7)}
    model, result = _train(10, script)
    auto = result.auto
    assert auto["stopped_at"] == 10 and auto["kept_step"] == 6  # highest retained among met, earliest on a tie
    assert auto["target_met"] and not auto["guard_met"] and auto["compromise"] and "compromise" in auto["note"]
    assert _same(model, _train(6)[0])


def test_keeps_the_best_check_and_says_so_when_the_target_is_never_met():
    script = {0: (0.0, 0.9), 2: (0.6, 0.5), 4: (0.5, 0.9), 6: (0.7, 0.89), 8: (0.4, 0.9), 10: (0.2, 0.9)}
    model, result = _train(10, script)
    auto = result.auto
    assert not auto["target_met"] and auto["kept_step"] == 6  # within the guard, the one that forgot most
    assert auto["note"].startswith("target never met within the budget of 10 steps")
    assert _same(model, _train(6)[0])


def test_never_met_with_nothing_forgotten_keeps_the_end_of_the_budget():
    script = {0: (0.0, 0.9), 2: (0.0, 0.9), 4: (0.0, 0.9), 6: (0.0, 0.9)}  # ft on a generator: UA stays 0
    model, result = _train(6, script)
    assert result.auto["kept_step"] == 6 and not result.auto["target_met"]
    assert _same(model, _train(6)[0])


def test_last_check_kept_leaves_the_final_weights():
    script = {0: (0.0, 0.9), 3: (0.5, 0.9), 6: (0.6, 0.9), 7: (0.9, 0.9)}
    model, result = _train(7, script, every=3)  # the end of the budget is always checked
    assert [c["step"] for c in result.auto["checks"]] == [0, 3, 6, 7] and result.auto["kept_step"] == 7
    assert _same(model, _train(7)[0])


@pytest.mark.parametrize("confirm", [None, {0: (0.9,), 2: (0.5,), 6: (0.7,), 8: (0.6,), 10: (0.7,)}])
def test_resumed_auto_run_equals_an_unbroken_one(tmp_path, confirm):
    script = {0: (0.0, 0.9), 2: (1.0, 0.5), 4: (0.5, 0.9), 6: (1.0, 0.7), 8: (1.0, 0.6), 10: (1.0, 0.7)}
    unbroken, whole = _train(10, script, confirm=confirm)
    with pytest.raises(Interrupted):  # checkpoint after step 7: checks 0-6 and the kept weights are in it
        _train(10, script, checkpoint_dir=tmp_path / "ck", hooks=(InterruptAfter(6),), confirm=confirm)
    resumed, result = _train(10, script, checkpoint_dir=tmp_path / "ck", confirm=confirm)
    assert result.resumed_from == 7 and _same(unbroken, resumed)
    drop = ("seconds",)
    assert {k: v for k, v in result.auto.items() if k not in drop} == \
        {k: v for k, v in whole.auto.items() if k not in drop}
    assert result.history == whole.history
    assert (whole.auto["confirmations"] == 4) == (confirm is not None)  # steps 2, 6, 8, 10 met the target


@pytest.mark.parametrize("target, ua, retained, met", [
    (Target("class", ua=0.99), 0.99, 0.5, True), (Target("class", ua=0.99), 0.98, 1.0, False),
    (Target("random"), 0.04, 0.95, True),  # forget accuracy 96 % <= held-out 95 % + 2 points
    (Target("random"), 0.02, 0.95, False),
])
def test_targets(target, ua, retained, met):
    assert target.met(ua, retained) is met


def test_budget_from_epochs_and_check_spacing():
    assert budget(40, {"epochs": None}, 5000, 64) == 40
    assert budget(40, {"epochs": 2}, 5000, 64) == 157  # two passes over 5000 samples at batch 64
    assert budget(40, {"epochs": 0.1}, 100, 64) == 10  # never below MIN_BUDGET
    assert check_every(40, 10) == 4 and check_every(3, 10) == 1 and check_every(50, 5) == 10


def test_a_budget_in_epochs_is_checked_per_pass_over_the_data():
    """Five passes checked 5 times a pass (every 6 steps over 960 images at batch 32), not 5 times a budget:
    on a small generator of letters a first check at step 30 came after it had forgotten and begun losing
    the other letters (docs/auto-steps.md)."""
    from types import SimpleNamespace

    def spacing(epochs, train_size):
        auto = {"target_ua": 99.0, "max_retain_drop": 2.0, "epochs": epochs}
        config = SimpleNamespace(auto=auto, steps=50, batch_size=32)
        stop = auto_stop(config, lambda model: (0.0, 1.0), "class", train_size, checks=5, label="check")
        return stop.total, stop.every

    assert spacing(5, 960) == (150, 6)
    assert spacing(1, 960) == (30, 6)
    assert spacing(5, 0) == (50, 10)  # an embedded world keeps its recipe's steps and spacing
    assert spacing(None, 960) == (50, 10)  # no epochs: the steps are the budget
    assert spacing(0.5, 960) == (15, 3)  # less than a pass: 5 checks over the budget


# -- end to end: erase classify on a tiny CNN --------------------------------------------------------------
TINY_CNN = {**CLASSIFY_CNN, "architecture": {"type": "small-cnn", "widths": [8, 16], "dropout": 0.0},
            "unlearn": {"steps": 30, "lr": 3e-3, "batch_size": 32, "optimizer": "adam"},
            "methods": {"relabel": {"alpha": 1.0}},
            "pretrain": {"seed": 0, "steps": 60, "batch_size": 32, "lr": 0.01, "optimizer": "adam"}}


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    """A tiny CNN pretrained once, then classify runs: --steps auto, --steps 5, and a budget of a quarter
    pass over the digits (--epochs 0.25)."""
    out = tmp_path_factory.mktemp("auto-runs")
    (out / "tiny-cnn.yaml").write_text(yaml.safe_dump(TINY_CNN))
    assert main(["pretrain", str(out / "tiny-cnn.yaml")]) == 0
    for name, extra in (("auto", ["--steps", "auto"]), ("fixed", ["--steps", "5"]), ("epochs", ["--epochs", "0.25"])):
        assert main(["classify", "--model", str(out / "tiny-cnn.yaml"), "--forget-class", "3", "--method", "relabel",
                     "--out", str(out / name), *extra]) == 0
    return out


def _history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def test_classify_auto_reports_the_checks(auto_run):
    folder = auto_run / "auto"
    report = json.loads((folder / "EVAL.json").read_text())
    auto = report["auto_steps"]
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["auto"] == {"target_ua": 99.0, "max_retain_drop": 2.0, "epochs": None,
                              "epochs_everywhere": False, "by_default": False} and config["steps"] == 30
    assert auto["budget"] == 30 and auto["every"] == 3 and report["steps"] == auto["kept_step"] >= 1
    assert auto["stopped_at"] <= 30 and auto["checks"][0]["step"] == 0
    assert auto["original"]["ua"] == pytest.approx(report["metrics"]["original"]["unlearning_accuracy"])
    if auto["target_met"]:  # the check is the forget set itself: the kept model's UA is the check's
        kept = next(c for c in auto["checks"] if c["step"] == auto["kept_step"])
        assert report["metrics"]["unlearned"]["unlearning_accuracy"] == pytest.approx(kept["ua"])
        assert auto["stopped_at"] == auto["kept_step"]
    seconds = report["seconds"]
    assert 0 < seconds["checks"] and 0 < seconds["checks_share"] < 1
    history = _history(folder)
    assert history[0]["step"] == 0 and "check_ua" in history[0]
    assert len(history) == auto["stopped_at"] + 1
    assert [r["step"] for r in history if "check_ua" in r] == [c["step"] for c in auto["checks"]]
    assert (folder / "plots" / "loss_curves.png").is_file()
    assert f"`--steps auto`: stopped at step {auto['stopped_at']} of 30" in (folder / "SUMMARY.md").read_text()


def test_epochs_on_the_command_line_budget_the_run_by_its_own_data(auto_run):
    """--epochs E is --steps auto with a budget of E passes over the data the run trains on, the embedded
    digits included (a recipe's `epochs` applies to a user's data only)."""
    report = json.loads((auto_run / "epochs" / "EVAL.json").read_text())
    config = yaml.safe_load((auto_run / "epochs" / "config.yaml").read_text())
    assert config["auto"]["epochs"] == 0.25 and config["auto"]["epochs_everywhere"] is True
    from erase.data.worlds import load_world

    size = len(load_world("digits", "train"))  # forget (the 3s) + retain (the other digits)
    assert report["auto_steps"]["budget"] == budget(30, config["auto"], size, 32) == -(-size // 128) != 30


def test_steps_n_is_fixed_as_before(auto_run):
    folder = auto_run / "fixed"
    report = json.loads((folder / "EVAL.json").read_text())
    assert "auto_steps" not in report and report["steps"] == 5 and "checks" not in report["seconds"]
    assert yaml.safe_load((folder / "config.yaml").read_text())["auto"] is None
    history = _history(folder)
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5] and not any("check_ua" in r for r in history)


@pytest.mark.parametrize("argv, words", [
    (["--target-ua", "150"], "target_ua=150 (--target-ua): target_ua must be a number in (0, 100]"),
    (["--max-retain-drop", "-1"], "max_retain_drop=-1 (--max-retain-drop): max_retain_drop must be"),
    (["--steps", "5", "--target-ua", "90"], "--target-ua is a setting of --steps auto"),
    (["--steps", "5", "--epochs", "2"], "--epochs is a setting of --steps auto"),
    (["--epochs", "0"], "epochs=0 (--epochs): epochs must be a number > 0"),
    (["--steps", "often"], "--steps must be a positive number, got 'often'"),
])
def test_bad_auto_flags_are_refused_before_anything_is_written(cli, workdir, argv, words):
    before = files_under(workdir)
    code, _, err = cli("classify", "--forget-class", "3", "--init", "random", "--out", "X", *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert files_under(workdir) == before


def test_recipe_epochs_and_flags_reach_the_config(workdir):
    from erase.runs.resolve import resolve_config

    path = workdir / "r.yaml"
    path.write_text(yaml.safe_dump({**TINY_CNN, "unlearn": {**TINY_CNN["unlearn"], "epochs": 2}}))
    config, _ = resolve_config("classify", str(path), "salun", ["class:3"], steps="auto", target_ua="95")
    assert config.auto == {"target_ua": 95.0, "max_retain_drop": 2.0, "epochs": 2.0, "epochs_everywhere": False,
                           "by_default": False}
    assert config.steps == 30
    assert resolve_config("classify", str(path), "salun", ["class:3"])[0].auto is None  # embedded data: fixed
    assert resolve_config("classify", str(path), "retrain", ["class:3"], steps="auto")[0].auto is None


def test_auto_is_the_default_on_a_users_data_and_steps_n_stays_fixed(workdir):
    """No --steps: auto where the recipe states its budget in epochs and the data is a user's (--data, or a
    recipe written by `pretrain --data`); the recipe's tuned steps on the embedded worlds and where a recipe
    states steps only; --steps N is fixed everywhere; retraining is never auto."""
    from erase.runs.resolve import resolve_config

    in_epochs = {**TINY_CNN, "unlearn": {**TINY_CNN["unlearn"], "epochs": 2}}
    (workdir / "r.yaml").write_text(yaml.safe_dump(in_epochs))
    (workdir / "mine.yaml").write_text(yaml.safe_dump({**in_epochs, "data": "DIR"}))
    (workdir / "tuned.yaml").write_text(yaml.safe_dump({**TINY_CNN, "data": "DIR"}))  # states steps only
    by_data = resolve_config("classify", "r.yaml", "salun", ["class:3"], extra={"data": "DIR"})[0]
    by_recipe = resolve_config("classify", "mine.yaml", "salun", ["class:3"])[0]
    assert by_data.auto == by_recipe.auto == {"target_ua": 99.0, "max_retain_drop": 2.0, "epochs": 2.0,
                                              "epochs_everywhere": False, "by_default": True}
    asked = resolve_config("classify", "mine.yaml", "salun", ["class:3"], steps="auto")[0]
    assert asked.auto["by_default"] is False
    assert resolve_config("classify", "r.yaml", "salun", ["class:3"])[0].auto is None
    assert resolve_config("classify", "tuned.yaml", "salun", ["class:3"])[0].auto is None
    fixed = resolve_config("classify", "mine.yaml", "salun", ["class:3"], steps="12")[0]
    assert fixed.auto is None and fixed.steps == 12
    assert resolve_config("classify", "mine.yaml", "retrain", ["class:3"])[0].auto is None


def test_the_console_says_when_auto_was_the_default(capsys):
    from erase.runs.console import print_auto_steps

    auto = {"stopped_at": 6, "budget": 150, "kept_step": 6, "note": "target met at step 6"}
    for by_default in (False, True):
        print_auto_steps({"auto_steps": {**auto, "by_default": by_default}, "seconds": {"checks_share": 0.5}})
    asked, default = capsys.readouterr().out.splitlines()
    assert "default" not in asked and default.endswith("[the default on a model of your own data; --steps N runs "
                                                       "exactly N]")


def test_class_on_a_generator_checks_with_the_probe(cli, tiny_recipe, workdir):
    """`erase class --steps auto`: the probe's check on a few dozen samples, at the recipe's sampling."""
    code, out, err = cli("class", "--model", tiny_recipe, "--init", "random", "--forget", "3", "--method", "ga",
                         "--steps", "auto",
                         "--samples", "2", "--forget-samples", "4", "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    auto = report["auto_steps"]
    assert auto["budget"] == 3 and auto["every"] == 1 and auto["check"].startswith("probe on 60 samples")
    assert [c["step"] for c in auto["checks"]][:2] == [0, 1] and report["steps"] == auto["kept_step"]
    assert auto["guard"] == pytest.approx(1 / 36)  # one retained sample of the check: finer than 2 points
    assert f"stopped at step {auto['stopped_at']} of 3" in out
    history = _history(workdir / "run")
    original = auto["checks"][0]
    assert history[0] == {"step": 0, "check_ua": original["ua"], "check_retained": original["retained"],
                          "check_met": original["met"], "check_confirmed": original["confirmed"]}
    # the original's confirmation: 108 more retained samples (12 of each of 9 digits), pooled with the 36
    assert auto["confirmation"] == "108 more retained samples, pooled with the check's 36"


def test_concept_checks_with_its_judge(cli, workdir):
    """--epochs 1 on a concept: auto, with a budget of one pass over the generated forget and retain images."""
    code, out, err = cli("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--method", "ga",
                         "--epochs", "1", "--batch-size", "4", "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    auto = report["auto_steps"]
    images = report["data"]["forget_images"] + report["data"]["retain_images"]
    assert auto["check"].startswith("nudenet on ") and auto["budget"] == max(10, -(-images // 4))
    assert auto["checks"][0]["step"] == 0
    assert report["steps"] == auto["kept_step"] and 0 <= report["seconds"]["checks_share"] < 1
    # the original's confirmation: three times the check's retain-prompt images again, pooled with them
    words = auto["confirmation"].split()
    assert 0 <= auto["checks"][0]["confirmed"] <= 1 and int(words[0]) >= 3 * int(words[-1]) > 0


def test_a_second_concept_method_reuses_the_original_models_check(cli, workdir, monkeypatch):
    """The step-0 check scores the original model: a second method on the same weights reads it from the
    evaluation cache (tests/test_shipped_t2i_shapes.py's ESD run relies on it)."""
    import erase.evaluate.cache as cache

    monkeypatch.setattr(cache, "CACHE_DIR", workdir / "cache")  # this test's own cache
    args = ("concept", "--prompt", "nudity", "--init", "random", "--tiny", "--steps", "auto")
    for method in ("ga", "relabel"):
        code, _, err = cli(*args, "--method", method, "--out", method)
        assert code == 0, err
    reports = [json.loads((workdir / m / "EVAL.json").read_text())["auto_steps"] for m in ("ga", "relabel")]
    assert [r["budget"] for r in reports] == [2, 2]  # a concept's budget: the recipe's steps
    first, second = (r["checks"][0] for r in reports)
    assert first == second and first["step"] == 0
    assert len(list((workdir / "cache" / "auto-check").glob("*.pt"))) == 1  # one entry: the second run hit it


def test_a_retain_only_method_that_never_forgets_a_generators_class_gets_a_hint():
    from erase.runs.console import retain_only_hint

    never = {"auto_steps": {"target_met": False}}
    assert "ft trains on the retain data alone" in retain_only_hint({"method": "ft", **never})
    assert retain_only_hint({"method": "ft", "auto_steps": {"target_met": True}}) is None
    assert retain_only_hint({"method": "salun", **never}) is None  # has a forget objective: no such reason
    assert retain_only_hint({"method": "uce", **never}) is None  # a closed-form edit: its edit is the forgetting
    assert retain_only_hint({"method": "ft"}) is None  # fixed steps: no target to miss
    assert retain_only_hint({"method": "theirs"}) is None  # `erase eval` of a model unlearned elsewhere
    assert retain_only_hint({"method": "theirs", **never}) is None
