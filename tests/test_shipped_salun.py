"""On the shipped digits generators: SalUn with the recipe's defaults makes digit 3 disappear, the others stay.

Both are scored on a reduced sample budget (60 samples of the 3, 20 of each other digit: one sample is 5
points, half the tolerance) to keep CI's time; docs/methods.md and docs/dit.md give the full-budget numbers."""
import json

import pytest

BUDGET = ["--samples", "20", "--forget-samples", "60"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ddpm-digits", "dit-digits"])
def test_salun_forgets_digit_3_and_keeps_the_rest(cli, workdir, model):
    code, out, err = cli("class", "--model", model, "--forget", "3", "--method", "salun", *BUDGET,
                         "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    original, unlearned = report["metrics"]["original"], report["metrics"]["unlearned"]
    assert original["per_class_accuracy"]["3"] > 0.9  # the shipped model does draw 3s
    assert unlearned["per_class_accuracy"]["3"] < 0.05  # ... and after SalUn it does not
    assert unlearned["retained_accuracy"] >= original["retained_accuracy"] - 0.03
    for digit in "012456789":
        assert unlearned["per_class_accuracy"][digit] >= original["per_class_accuracy"][digit] - 0.10, digit
