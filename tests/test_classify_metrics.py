"""Classification metrics on toy predictions, checked against values worked out by hand."""
import math

import numpy as np
import pytest
import torch

from erase.evaluate.classification import gap_to_retrain, scores
from erase.evaluate.mia import called_non_members, entropy, features, fit_attack, modified_entropy


def _probs(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_ua_ra_ta_on_toy_predictions():
    # forget: 4 samples, predictions argmax = [0, 1, 1, 2] vs labels [0, 0, 0, 0] -> 3 wrong -> UA = 3/4
    forget = (_probs([[.8, .1, .1], [.2, .7, .1], [.3, .6, .1], [.1, .2, .7]]), torch.tensor([0, 0, 0, 0]))
    # retain: argmax = [1, 2, 2, 0, 1] vs labels [1, 2, 0, 0, 1] -> 4 of 5 right -> RA = 0.8
    retain = (_probs([[.1, .8, .1], [.1, .1, .8], [.1, .1, .8], [.9, .05, .05], [.2, .7, .1]]),
              torch.tensor([1, 2, 0, 0, 1]))
    # test: argmax = [1, 1, 2] vs labels [1, 2, 2] -> TA = 2/3
    test = (_probs([[.1, .8, .1], [.1, .6, .3], [.1, .1, .8]]), torch.tensor([1, 2, 2]))
    out = scores(forget, retain, test, ["a", "b", "c"])
    assert out["unlearning_accuracy"] == pytest.approx(0.75)
    assert out["retained_accuracy"] == pytest.approx(0.8)
    assert out["test_accuracy"] == pytest.approx(2 / 3)
    assert out["per_class_test_accuracy"] == {"b": 1.0, "c": pytest.approx(0.5)}
    assert (out["forget_samples"], out["retain_samples"], out["test_samples"]) == (4, 5, 3)
    lo, hi = out["unlearning_accuracy_ci95"]
    assert lo < 0.75 < hi
    assert 0 <= out["mia_efficacy"] <= 1 and out["mia_efficacy"] == out["mia"]["confidence"]
    assert set(out["mia_shadow_accuracy"]) == set(out["mia"]) and 0 <= out["mia_shadow_accuracy"]["confidence"] <= 1


def test_entropy_and_modified_entropy_by_hand():
    p = _probs([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert entropy(p).tolist() == pytest.approx([math.log(2), 0.0])
    # Mentr for label 0, p = (0.5, 0.5, 0): -(1-0.5) log 0.5 - 0.5 log(1-0.5) - 0 * log 1 = log 2
    # Mentr for label 1, p = (1, 0, 0): -(1-0) log(0) -> huge ; use a soft row instead:
    q = _probs([[0.7, 0.2, 0.1]])
    expected = -(0.3 * math.log(0.7)) - 0.2 * math.log(0.8) - 0.1 * math.log(0.9)
    assert modified_entropy(p[:1], torch.tensor([0])).item() == pytest.approx(math.log(2))
    assert modified_entropy(q, torch.tensor([0])).item() == pytest.approx(expected)
    # with the wrong label the true-class term moves: label 1 -> -(0.8) log 0.2 - 0.7 log 0.3 - 0.1 log 0.9
    wrong = -(0.8 * math.log(0.2)) - 0.7 * math.log(0.3) - 0.1 * math.log(0.9)
    assert modified_entropy(q, torch.tensor([1])).item() == pytest.approx(wrong)


def test_confidence_feature_is_the_true_class_probability():
    f = features(_probs([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]), torch.tensor([0, 1]))
    assert f["confidence"].ravel().tolist() == pytest.approx([0.7, 0.3])
    assert f["correctness"].ravel().tolist() == [1.0, 0.0]


def test_shadow_attack_calls_low_confidence_non_member():
    members = np.full((50, 1), 0.99) + np.linspace(0, 0.005, 50)[:, None]
    non_members = np.full((50, 1), 0.3) + np.linspace(0, 0.1, 50)[:, None]
    attack = fit_attack(members, non_members)[0]
    # forget samples the model is unsure about look like test data: all called non-members
    assert called_non_members(attack, np.full((10, 1), 0.32)) == 1.0
    # forget samples still fitted with high confidence look like members: none called non-member
    assert called_non_members(attack, np.full((10, 1), 0.995)) == 0.0
    # half and half
    target = np.concatenate([np.full((5, 1), 0.995), np.full((5, 1), 0.32)])
    assert called_non_members(attack, target) == 0.5


def test_the_attacks_own_accuracy_says_whether_it_can_tell_members_apart():
    members = np.full((50, 1), 0.99) + np.linspace(0, 0.005, 50)[:, None]
    assert fit_attack(members, np.full((50, 1), 0.3) + np.linspace(0, 0.1, 50)[:, None])[1] == 1.0
    # a model that fits its test set as well as its training set: members and non-members look the same
    assert abs(fit_attack(members, members.copy())[1] - 0.5) < 0.1
    # members and non-members from one distribution: the attack memorises its own rows, but held out it is at
    # chance, which is what the reported accuracy says
    rng = np.random.default_rng(0)
    same_in, same_out = rng.normal(0, 3, (100, 10)), rng.normal(0, 3, (100, 10))
    attack, held_out = fit_attack(same_in, same_out)
    rows, labels = np.concatenate([same_in, same_out]), np.r_[np.ones(100), np.zeros(100)]
    assert attack.score(rows, labels) > 0.95 and abs(held_out - 0.5) < 0.1


def test_shadow_members_cover_every_class_of_a_folder_listed_class_by_class():
    from erase.evaluate.classification import shadow_members

    assert shadow_members(10, 20).tolist() == list(range(10))  # as many as the retain set has: all of them
    labels = torch.arange(9).repeat_interleave(100)  # an ImageFolder: 100 of class 0, then 100 of class 1, ...
    members = shadow_members(len(labels), 90)
    assert len(members) == 90 and labels[members].bincount().tolist() == [10] * 9


def test_gap_to_retrain_and_its_average():
    unlearned = {"unlearning_accuracy": 0.9, "retained_accuracy": 0.95, "test_accuracy": 0.9,
                 "mia_efficacy": 0.7, "run_time_seconds": 10.0}
    retrained = {"unlearning_accuracy": 1.0, "retained_accuracy": 1.0, "test_accuracy": 0.98,
                 "mia_efficacy": 1.0, "run_time_seconds": 100.0}
    gaps = gap_to_retrain(unlearned, retrained)
    assert gaps["unlearning_accuracy"] == pytest.approx(0.1)
    assert gaps["retained_accuracy"] == pytest.approx(0.05)
    assert gaps["test_accuracy"] == pytest.approx(0.08)
    assert gaps["mia_efficacy"] == pytest.approx(0.3)
    assert gaps["avg_gap"] == pytest.approx((0.1 + 0.05 + 0.08 + 0.3) / 4)
    assert gaps["run_time_ratio"] == pytest.approx(0.1)
