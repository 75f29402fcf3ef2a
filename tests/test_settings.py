"""Settings are declared once (type, range, default), read `--set` text and recipe values, and a bad one is
refused before anything is written or loaded: exit 2, one line naming the setting, its value, what is allowed
and where it came from; no run folder."""
import subprocess
import sys

import pytest
import yaml

from erase.errors import UserError
from erase.methods import method_class, method_names
from erase.methods.base import COMMON_SETTINGS
from erase.methods.selection import selection_class, selection_names
from erase.settings import EVALUATION, TRAINING, Bool, Choice, Float, Int, Text, check_values
from tests.conftest import TINY_DDPM, files_under

# One bad value for every declared setting: out of range, the wrong type or junk (two for mask_ratio, the
# cases of issue 19). test_every_setting_has_a_bad_value keeps it complete.
BAD = {
    "clip": "-1", "esd_eta": "-0.5", "esd_prompts": "all", "adaptive_power": "-1",
    "alpha": "abc", "mask_ratio": "1.5", "mask_clip": "-1",
    "gamma": "-1", "fisher_clip": "x", "fisher_retain_batches": "0",
    "fraction": "0", "partial_rule": "biggest",
    "forget_alpha": "-1", "remain_alpha": "nan", "forget_clip": "-inf", "forget_freq": "0.5", "decay_alpha": "maybe",
    "form": "slow", "epsilon": "abc", "multiplier_lr": "0", "multiplier_decay": "-0.1", "multiplier_init": "[1]",
    "forget_floor": "-1", "retain_floor": "1e400", "surgery_eps": "inf",
    "keep": "1.5", "log": "",
    "preserve_lambda": "-1", "ridge": "0",
}
COMMANDS = {  # each refuses a bad setting before any work; --init random needs no weights
    "class": ["class", "--model", "tiny-ddpm.yaml", "--forget", "3", "--init", "random"],
    "classify": ["classify", "--model", "digits-cnn", "--forget-class", "3", "--init", "random"],
    "concept": ["concept", "--model", "t2i-shapes", "--prompt", "triangle", "--init", "random"],
}


def declared_rows(common: bool = True):
    """(method, params, setting) for every setting of every method (`common`: the settings every method takes
    too; else those once, under ga), and for every selection's settings under another method's update rule
    (ga, which has none of its own)."""
    shared = {s.name for s in COMMON_SETTINGS}
    rows = [(m, None, s) for m in method_names() for s in method_class(m).declared_settings()
            if common or s not in shared]
    rows += [] if common else [("ga", None, s) for s in sorted(shared)]
    rows += [("ga", sel, s.name) for sel in selection_names() for s in selection_class(sel).settings]
    return rows + [("salun", None, "mask_ratio=0")]


ROWS = [("class", *row) for row in declared_rows()]
ROWS += [(command, *row) for command in ("classify", "concept") for row in declared_rows(common=False)]


def _bad(setting: str) -> tuple[str, str]:
    name, _, value = setting.partition("=")
    return name, value if setting.count("=") else BAD[name]


@pytest.fixture
def tiny(workdir):
    (workdir / "tiny-ddpm.yaml").write_text(yaml.safe_dump(TINY_DDPM))
    return workdir


def _assert_refused(result, workdir, before, *words):
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    assert files_under(workdir) == before and not (workdir / "X").exists()  # no run folder, nothing written


def test_every_setting_has_a_bad_value():
    names = {s for m in method_names() for s in method_class(m).declared_settings()}
    names |= {s.name for sel in selection_names() for s in selection_class(sel).settings}
    assert names == set(BAD)


@pytest.mark.parametrize("command, method, params, setting", ROWS,
                         ids=[f"{c}-{m}-{p or 'default'}-{s}" for c, m, p, s in ROWS])
def test_bad_setting_is_refused_before_anything_is_written(cli, tiny, command, method, params, setting):
    name, value = _bad(setting)
    before = files_under(tiny)
    argv = [*COMMANDS[command], "--method", method, *(["--params", params] if params else []), "--out", "X",
            "--set", f"{name}={value}"]
    allowed = method_class(method).declared_settings(params and selection_class(params))[name].allowed()
    _assert_refused(cli(*argv), tiny, before, f"{name}=", "(--set)", f"{name} must be {allowed}")


@pytest.mark.slow
@pytest.mark.parametrize("method, values", [
    ("salun", ["mask_ratio=1e-9", "alpha=0", "clip=0"]),  # a ratio this small selects one weight
    ("igs", ["form=fast", "multiplier_init=-1", "epsilon=-0.5", "retain_floor=0"]),
])
def test_accepted_extremes_run_end_to_end(cli, tiny, method, values):
    """Values at the edges of what the declarations allow are accepted and run (one step, tiny evaluation)."""
    argv = ["class", "--model", "tiny-ddpm.yaml", "--forget", "3", "--init", "random", "--method", method,
            "--steps", "1", "--samples", "1", "--forget-samples", "1", "--out", "run"]
    code, _, err = cli(*argv, *(a for v in values for a in ("--set", v)))
    assert code == 0, err
    report = __import__("json").loads((tiny / "run" / "EVAL.json").read_text())
    for value in values:
        name, _, text = value.partition("=")
        declared = method_class(method).declared_settings()[name]
        assert report["settings"][name] == declared.read(text)


def test_issue_table(cli, tiny):
    """Issue 19: a TypeError traceback (alpha=abc) and a half-written X (mask_ratio) before; one line now."""
    before = files_under(tiny)
    for value, words in (("alpha=abc", "alpha=abc (--set): alpha must be a number >= 0"),
                         ("mask_ratio=1.5", "mask_ratio=1.5 (--set): mask_ratio must be a number in (0, 1]"),
                         ("mask_ratio=0", "mask_ratio=0 (--set): mask_ratio must be a number in (0, 1]")):
        _assert_refused(cli("class", "--forget", "3", "--method", "salun", "--set", value, "--out", "X"), tiny,
                        before, words)


def test_set_values_are_read_by_their_declaration():
    """YAML read `--set alpha=1e-3` as the text '1e-3'; the declaration reads a number."""
    declared = method_class("igs").declared_settings()
    values = check_values(declared, {"epsilon": "1e-3", "form": " fast", "multiplier_init": "none",
                                     "clip": "0"}, "--set")
    assert values == {"epsilon": 0.001, "form": "fast", "multiplier_init": None, "clip": 0.0}
    assert isinstance(values["clip"], float)
    sfron = method_class("sfron").declared_settings()
    assert check_values(sfron, {"forget_freq": "3.0", "decay_alpha": "No", "fisher_retain_batches": "1e1"},
                        "--set") == {"forget_freq": 3, "decay_alpha": False, "fisher_retain_batches": 10}
    with pytest.raises(UserError, match=r"^forget_freq=2.5 \(recipe x.yaml\): forget_freq must be a whole number >= 1"):
        check_values(sfron, {"forget_freq": 2.5}, "recipe x.yaml")
    with pytest.raises(UserError, match="decay_alpha=1.0"):  # YAML numbers are not booleans
        check_values(sfron, {"decay_alpha": 1.0}, "recipe")


def test_every_default_is_allowed_by_its_own_declaration():
    from dataclasses import fields

    from diffusers.optimization import SchedulerType

    from erase.train import TrainSettings

    declared = [*COMMON_SETTINGS, *TRAINING.values(), *EVALUATION.values()]
    declared += [s for m in method_names() for s in method_class(m).declared_settings().values()]
    for setting in declared:
        assert setting.read(setting.default) == setting.default, setting.name
    trainer = {f.name: f.default for f in fields(TrainSettings)}
    assert {name: s.default for name, s in TRAINING.items()} == {name: trainer[name] for name in TRAINING}
    schedules = {s.value for s in SchedulerType}
    assert set(TRAINING["lr_schedule"].choices) <= schedules


@pytest.mark.parametrize("declaration, text, allowed", [
    (Float("x", 0.5, gt=0, le=1), "0", "a number in (0, 1]"),
    (Float("x", 0, ge=0, lt=1), "1", "a number in [0, 1)"),
    (Int("x", 1, ge=1), "1.5", "a whole number >= 1"),
    (Int("x", 1, ge=1, optional=True), "", "a whole number >= 1 or none"),
    (Bool("x", True), "2", "true or false"),
    (Choice("x", "a", choices=("a", "b")), "A", "one of a, b"),
    (Text("x", None, optional=True), " ", "a non-empty text or none"),
])
def test_refusal_says_what_is_allowed(declaration, text, allowed):
    with pytest.raises(UserError) as caught:
        check_values({"x": declaration}, {"x": text}, "--set")
    assert str(caught.value).endswith(f"(--set): x must be {allowed}")


def _recipe(workdir, **changes):
    data = {**TINY_DDPM, **changes}
    path = workdir / "my-recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, words", [
    ({"methods": {"salun": {"alpha": "abc"}}}, "alpha=abc (recipe {path}, methods.salun): alpha must be"),
    ({"methods": {"salun": {"mask_ratio": 2}}}, "mask_ratio=2 (recipe {path}, methods.salun)"),
    ({"methods": {"salun": {"alpah": 1}}}, "unknown setting 'alpah' for method salun with params saliency (recipe "
                                           "{path}, methods.salun)"),
    ({"unlearn": {"steps": 3, "lr": 1e-3, "batch_size": 8, "optimizer": "adamx"}},
     "optimizer=adamx (recipe {path}, unlearn): optimizer must be one of adam, adamw, sgd"),
    ({"unlearn": {"steps": 0, "lr": 1e-3, "batch_size": 8}}, "steps=0 (recipe {path}, unlearn)"),
    ({"unlearn": {"steps": 3, "lr": "fast", "batch_size": 8}}, "lr=fast (recipe {path}, unlearn)"),
    ({"unlearn": {"steps": 3, "lr": 1e-3, "batch_size": 8, "warmup_steps": -1}}, "warmup_steps=-1 (recipe {path}"),
    ({"unlearn": {"steps": 3, "lr": 1e-3, "batch_size": 8, "epochs": 0}}, "epochs=0 (recipe {path}, unlearn): "
                                                                         "epochs must be a number > 0 or none"),
    ({"methods": {"salun": {"target_ua": 101}}}, "target_ua=101 (recipe {path}, methods.salun)"),
    ({"evaluate": {"samples_per_class": 0}}, "samples_per_class=0 (recipe {path}, evaluate)"),
    ({"pretrain": {"steps": 4, "batch_size": 8, "lr": 1e-3, "ema_decay": 1.5}}, "ema_decay=1.5 (recipe {path}, "
                                                                               "pretrain)"),
])
def test_bad_recipe_value_names_the_file(cli, workdir, changes, words):
    path = _recipe(workdir, **changes)
    before = files_under(workdir)
    method = "retrain" if "pretrain" in changes else "salun"
    _assert_refused(cli("class", "--model", path, "--forget", "3", "--init", "random", "--method", method,
                        "--out", "X"), workdir, before, words.format(path=path.resolve()))


def test_bad_value_in_a_model_folders_recipe_names_it(cli, workdir):
    folder = workdir / "model"
    folder.mkdir()
    (folder / "erase_recipe.yaml").write_text(yaml.safe_dump({**TINY_DDPM, "methods": {"ga": {"clip": -2}}}))
    before = files_under(workdir)
    _assert_refused(cli("class", "--model", folder, "--forget", "3", "--init", "random", "--method", "ga",
                        "--out", "X"), workdir, before,
                    f"clip=-2 (recipe {(folder / 'erase_recipe.yaml').resolve()}, methods.ga)")


def test_resume_checks_the_runs_config(cli, workdir):
    folder = workdir / "half"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump({"command": "class", "model": "ddpm-digits",
                                                        "method": "salun", "target": ["3"],
                                                        "hyper": {"mask_ratio": 7}}))
    before = files_under(workdir)
    _assert_refused(cli("class", "--resume", folder), workdir, before,
                    f"mask_ratio=7 ({folder / 'config.yaml'}): mask_ratio must be a number in (0, 1]")


def test_cli_and_commands_import_no_heavy_module():
    """Light command modules: a refusal never waits for torch, diffusers, accelerate or transformers."""
    probe = """
import importlib, pathlib, sys
import erase.cli
for path in sorted(pathlib.Path("erase/commands").glob("*.py")):
    importlib.import_module("erase.commands." + path.stem if path.stem != "__init__" else "erase.commands")
import erase.methods, erase.runs.resolve, erase.settings
from erase.cli import main
for argv in (["class", "--forget", "3", "--set", "alpha=abc"], ["class", "--model", "ddpm-cifar10", "--forget", "0"],
             ["class", "--model", "dit-imagenet", "--forget", "golden retriver"],
             ["classify", "--forget-class", "3", "--gradient-checkpointing"],
             ["concept", "--prompt", "hexagon", "--model", "t2i-shapes"], ["sample", "--classes", "0-12"],
             ["pretrain", "ddpm-cifar10"], ["eval", "--run", "nowhere"],
             ["attack", "--run", "nowhere"]):
    assert main(argv) == 2, argv
print(sorted(m for m in ("torch", "diffusers", "accelerate", "transformers", "torchvision") if m in sys.modules))
"""
    import erase

    root = __import__("pathlib").Path(erase.__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(root), "ERASE_MODELS": "/nonexistent"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_docs_list_every_setting():
    """docs/settings.md holds `python -m erase list --settings` verbatim."""
    from pathlib import Path

    from erase.commands.list_ import settings_markdown

    page = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text()
    assert f"<!-- settings:start -->\n{settings_markdown()}\n<!-- settings:end -->" in page


def test_a_method_with_the_old_defaults_dict_is_refused_at_registration():
    """Nothing reads `defaults` any more: a method (or selection) still written that way fails loudly."""
    from erase.methods.base import Method
    from erase.methods.registry import register
    from erase.methods.selection import Selection, register_selection

    with pytest.raises(TypeError, match="declare its settings as `settings = "):
        register("old-style")(type("OldStyle", (Method,), {"defaults": {"alpha": 1.0}}))
    with pytest.raises(TypeError, match="declare its settings as `settings = "):
        register_selection("old-style")(type("OldSelection", (Selection,), {"defaults": {"ratio": 0.5}}))
    assert "old-style" not in method_names() and "old-style" not in selection_names()
