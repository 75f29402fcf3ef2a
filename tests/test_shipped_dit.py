"""On the shipped dit-digits: SalUn with the recipe's defaults makes digit 3 disappear, the others stay.

A reduced sample budget keeps it within CI's time (README gives the full-budget numbers)."""
import json

import pytest


@pytest.mark.slow
def test_salun_forgets_digit_3_on_dit_digits_and_keeps_the_rest(cli, workdir):
    code, out, err = cli("class", "--model", "dit-digits", "--forget", "3", "--method", "salun", "--samples", "20",
                         "--forget-samples", "60", "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    original, unlearned = report["metrics"]["original"], report["metrics"]["unlearned"]
    assert original["per_class_accuracy"]["3"] > 0.9  # the shipped model does draw 3s
    assert unlearned["per_class_accuracy"]["3"] < 0.05  # ... and after SalUn it does not
    assert unlearned["retained_accuracy"] >= original["retained_accuracy"] - 0.03
    for digit in "012456789":
        assert unlearned["per_class_accuracy"][digit] >= original["per_class_accuracy"][digit] - 0.10, digit
