"""The benchmark code runs and reports what it claims (tiny recipe); no timing is asserted here."""
import json

import pytest
import yaml

from bench.report import write_results
from bench.step_cost import step_costs
from bench.steps_to_forget import UA_GOAL, forget_curve
from conftest import TINY_DDPM


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_DDPM))
    return str(path)


def test_step_cost_reports_ratios_to_fine_tune(tiny):
    result = step_costs(tiny, ["salun", "ft"], rounds=2, steps=2, warmup=1, init="random")
    rows = result["methods"]
    assert list(rows) == ["ft", "salun"]
    assert rows["ft"]["ratio_to_ft"] == 1.0
    assert rows["salun"]["timed_steps"] == 4 and rows["salun"]["seconds_per_step"] > 0
    assert rows["salun"]["prepare_seconds"] > 0 == rows["ft"]["prepare_seconds"]  # the mask is a one-off


def test_steps_to_forget_scores_on_schedule_and_stops_at_the_goal(tiny, tmp_path):
    curve = forget_curve(tiny, "ga", every=2, steps=4, init="random")
    assert curve["budget"] == 4
    steps = [p["step"] for p in curve["curve"]]
    assert steps and steps == list(range(2, 2 * len(steps) + 1, 2))
    if curve["steps_to_forget"] is not None:
        assert curve["steps_to_forget"] == steps[-1] and curve["curve"][-1]["unlearning_accuracy"] >= UA_GOAL
    results = {"cpu": {"date": "now", "seconds": 1, "machine": {}, "models": {
        tiny: {"steps_to_forget": {"methods": {"ga": curve}}}}}}
    write_results(results, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| ga | 4 |" in text and "Not measured: no GPU" in text
    assert (tmp_path / "steps_to_forget.png").stat().st_size > 0
    json.dumps(results)


def test_results_rewrite_keeps_the_refusals_section(tmp_path):
    """`make bench` rewrites RESULTS.md; bench/refusals.py's section (written separately) survives it."""
    from bench.refusals import write_section

    (tmp_path / "RESULTS.md").write_text("# old\n")
    write_section("| 0.31 | 2 | class x | one line |", tmp_path / "RESULTS.md")
    write_section("| 0.30 | 2 | class x | one line |", tmp_path / "RESULTS.md")  # replaced, not appended
    write_results({}, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.startswith("# Benchmarks") and text.count("## Refusals") == 1 and "| 0.30 |" in text
