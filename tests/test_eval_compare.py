"""`erase eval` re-scores finished runs; `erase compare` builds the table and plots; runs draw their plots."""
import csv
import json

import pytest
import yaml

from erase.cli import main
from tests.test_classify_run import TINY_CNN

PLOTS = ("ua_vs_ra.png", "ua_vs_fid_probe.png", "loss_curves.png", "per_class_accuracy.png")


@pytest.fixture
def two_runs(cli, tiny_recipe, workdir):
    for method in ("ga", "relabel"):
        code, _, err = cli("class", "--model", tiny_recipe, "--forget", "3", "--method", method, "--init", "random",
                           "--steps", "3", "--out", f"runs/{method}")
        assert code == 0, err
    return workdir / "runs" / "ga", workdir / "runs" / "relabel"


def test_runs_draw_their_own_plots_and_embed_them(two_runs):
    for run in two_runs:
        for name in ("loss_curves.png", "per_class_accuracy.png"):
            assert (run / "plots" / name).stat().st_size > 1000
        summary = (run / "SUMMARY.md").read_text()
        assert "](plots/loss_curves.png)" in summary and "](plots/per_class_accuracy.png)" in summary
        assert "](grids/before_after.png)" in summary


def test_eval_rescores_with_new_samples_and_seed(cli, two_runs):
    run = two_runs[0]
    before = (run / "EVAL.json").read_text()
    code, out, err = cli("eval", "--run", run, "--samples", "2", "--forget-samples", "5", "--seed", "1")
    assert code == 0, err
    written = run / "evals" / "seed1-samples2-forget5-fid_probe.json"
    report = json.loads(written.read_text())
    assert (run / "EVAL.json").read_text() == before  # the run's record is untouched without --update
    assert report["evaluation"]["seed"] == 1 and report["evaluation"]["fid_backend"]["metrics"] == ["fid_probe"]
    for which in ("original", "unlearned"):
        metrics = report["metrics"][which]
        assert metrics["forget_samples"] == 5 and metrics["retained_samples"] == 18
        lo, hi = metrics["unlearning_accuracy_ci95"]
        assert 0 <= lo <= metrics["unlearning_accuracy"] <= hi <= 1
        assert "fid_probe" in metrics
    assert report["method"] == "ga" and report["target"]["name"] == "3"
    assert "n=5" in out and "95 % CI" in out

    code, _, err = cli("eval", "--run", run, "--samples", "2", "--forget-samples", "6", "--update")
    assert code == 0, err
    assert json.loads((run / "EVAL.json").read_text())["metrics"]["unlearned"]["forget_samples"] == 6
    assert len(list((run / "evals").glob("previous-*.json"))) == 1


def test_compare_two_runs_writes_table_and_plots(cli, two_runs, workdir):
    code, out, err = cli("compare", *two_runs, "--out", "cmp")
    assert code == 0, err
    cmp = workdir / "cmp"
    for name in PLOTS:
        assert (cmp / name).stat().st_size > 1000, name
    markdown = (cmp / "compare.md").read_text()
    assert "| ga |" in markdown and "| relabel |" in markdown and "- (no unlearning)" in markdown
    for name in PLOTS:
        assert f"]({name})" in markdown
    rows = list(csv.DictReader((cmp / "compare.csv").open()))
    assert [r["method"] for r in rows] == ["- (no unlearning)", "ga", "relabel"]
    assert all(0 <= float(r["unlearning_accuracy"]) <= 1 and float(r["fid_probe"]) >= 0 for r in rows)


def test_compare_skips_unfinished_runs(cli, two_runs, workdir):
    (two_runs[1] / "EVAL.json").unlink()
    code, _, err = cli("compare", *two_runs, "--out", "cmp")
    assert code == 0 and "skipping" in err
    rows = list(csv.DictReader((workdir / "cmp" / "compare.csv").open()))
    assert [r["method"] for r in rows] == ["- (no unlearning)", "ga"]


def test_compare_takes_classifier_runs(cli, two_runs, workdir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn")
    recipe = folder / "tiny-cnn.yaml"
    recipe.write_text(yaml.safe_dump(TINY_CNN))
    assert main(["pretrain", str(recipe)]) == 0
    code, _, err = cli("classify", "--model", recipe, "--forget-class", "3", "--method", "ft", "--out", "runs/cnn")
    assert code == 0, err
    assert (workdir / "runs" / "cnn" / "plots" / "per_class_accuracy.png").is_file()
    code, _, err = cli("compare", *two_runs, workdir / "runs" / "cnn", "--out", "cmp")
    assert code == 0, err
    rows = list(csv.DictReader((workdir / "cmp" / "compare.csv").open()))
    assert len(rows) == 5  # two originals (generator, classifier) + three runs
    cnn = rows[-1]
    assert cnn["method"] == "ft" and cnn["test_accuracy"] and cnn["mia_efficacy"] and cnn["avg_gap"]
    assert not cnn["fid_probe"]
    code, _, err = cli("eval", "--run", workdir / "runs" / "cnn")
    assert code == 2 and "classifier runs are scored exactly" in err


def test_eval_with_the_runs_own_settings_reproduces_its_scores(cli, two_runs):
    run = two_runs[1]
    code, _, err = cli("eval", "--run", run)
    assert code == 0, err
    rescored = json.loads((run / "evals" / "seed0-samples3-forget4-fid_probe.json").read_text())["metrics"]
    recorded = json.loads((run / "EVAL.json").read_text())["metrics"]
    for which in ("original", "unlearned"):  # same weights (the random original re-drawn from the seed), same seeds
        for key in ("unlearning_accuracy", "retained_accuracy", "per_class_accuracy"):
            assert rescored[which][key] == recorded[which][key], (which, key)
        assert abs(rescored[which]["fid_probe"] - recorded[which]["fid_probe"]) < 1e-4
