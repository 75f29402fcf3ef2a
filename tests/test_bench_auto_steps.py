"""A small `make bench` auto-steps suite in CI: letters (a dataset erase was never tuned on), a classifier
trained on it as a new user would, two methods with no flags (`--steps auto` is the default on a user's data:
a budget in epochs and checks); UA and the gap to the retrained model with margin (the full suite:
bench/auto_steps.py, bench/RESULTS.md)."""
import pytest

from bench.auto_steps import CLASSIFIER_TARGET, markdown, run


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run(["letters"], ["relabel", "salun"], tmp_path_factory.mktemp("bench-auto"), per_class=40,
               generators=False)


def test_methods_with_no_flags_forget_and_stay_near_the_retrained_model(results):
    classifier = results["datasets"]["letters"]["classifier"]
    assert classifier["model_test_accuracy"] >= 0.9
    for method, row in classifier["methods"].items():
        assert row["unlearning_accuracy"] >= 0.99, method
        assert row["avg_gap"] <= 2 * CLASSIFIER_TARGET["avg_gap"], (method, row)  # 2 points, with margin
        assert 1 <= row["steps"] <= row["stopped_at"] <= row["budget"] == 10, row  # 2 epochs of 320 images
        assert row["by_default"] is True  # no --steps: auto because the model is of a user's data


def test_the_table_has_a_row_per_method(results):
    text = markdown(results)
    assert "### letters: classifier" in text
    assert text.count("\n| relabel |") == 1 and text.count("\n| salun |") == 1
