"""Classification unlearning metrics (SalUn's protocol) and their gap to the retrained reference.

UA  unlearning accuracy = 1 - accuracy on the forget set (higher = more forgotten)
RA  retain accuracy on the retain set; TA test accuracy on the test set (without the forgotten classes
    when whole classes are forgotten, as SalUn's class-wise protocol does)
MIA MIA-efficacy on the forget set (erase/evaluate/mia.py)
RTE run time of the unlearning (or retraining) in seconds
Avg. gap = mean over UA, RA, TA, MIA of |metric - metric of the retrained model| (RTE is not averaged).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from erase.data.sampling import full_pass_loader, spread
from erase.evaluate.mia import mia_efficacy
from erase.evaluate.probe import wilson_interval

GAP_METRICS = ("unlearning_accuracy", "retained_accuracy", "test_accuracy", "mia_efficacy")


@torch.no_grad()
def predict_probs(model, dataset, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax outputs (eval mode, no augmentation) and labels of every sample, in dataset order."""
    model.eval()
    device = next(model.parameters()).device
    probs, labels = [], []
    for batch in full_pass_loader(dataset, batch_size):
        probs.append(F.softmax(model(batch["x"].to(device)).float(), dim=-1).cpu())
        labels.append(batch["label"])
    if not probs:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(probs), torch.cat(labels)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(1) == labels).float().mean()) if len(labels) else float("nan")


def per_class_accuracy(probs: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> dict[str, float]:
    predictions = probs.argmax(1)
    return {class_names[c]: float((predictions[labels == c] == c).float().mean()) for c in labels.unique().tolist()}


def shadow_members(retain: int, test: int) -> torch.Tensor:
    """Indices of min(retain, test) retain samples spread evenly over the retain set. SalUn takes the first
    len(test) of CIFAR-10's training order, which is shuffled; a folder of images lists each class in turn, and
    its first samples would be a few classes only, so the attack would learn classes instead of membership."""
    return torch.tensor(spread(range(retain), test), dtype=torch.long)


def scores(forget: tuple, retain: tuple, test: tuple, class_names: Sequence[str],
           test_all: tuple | None = None) -> dict[str, Any]:
    """UA/RA/TA/MIA from (probs, labels) of forget, retain and test; the MIA shadow set is SalUn's:
    len(test) retain samples as members (shadow_members), the test samples as non-members. Per-class test
    accuracy uses `test_all` (the test set with any left-out classes) when given."""
    (f_probs, f_labels), (r_probs, r_labels), (t_probs, t_labels) = forget, retain, test
    all_probs, all_labels = test_all if test_all is not None else test
    members = shadow_members(len(r_labels), len(t_labels))
    mia, mia_shadow = mia_efficacy(r_probs[members], r_labels[members], t_probs, t_labels, f_probs, f_labels)
    forget_errors = int((f_probs.argmax(1) != f_labels).sum())
    return {
        "unlearning_accuracy": forget_errors / len(f_labels),
        "unlearning_accuracy_ci95": wilson_interval(forget_errors, len(f_labels)),
        "retained_accuracy": accuracy(r_probs, r_labels),
        "test_accuracy": accuracy(t_probs, t_labels),
        "mia_efficacy": mia["confidence"],
        "mia": mia,
        "mia_shadow_accuracy": mia_shadow,  # held out; near 0.5 the attack cannot tell members apart
        "forget_samples": len(f_labels),
        "retain_samples": len(r_labels),
        "test_samples": len(t_labels),
        "per_class_test_accuracy": per_class_accuracy(all_probs, all_labels, class_names),
    }


def evaluate_classifier(model, forget_set, retain_set, test_set, class_names: Sequence[str],
                        batch_size: int = 512, test_all=None) -> dict[str, Any]:
    """Score a model on its forget, retain and test sets; `test_all` (a superset of test_set, matched by
    sample id) is predicted once and also gives the per-class accuracy of classes left out of test_set."""
    forget = predict_probs(model, forget_set, batch_size)
    retain = predict_probs(model, retain_set, batch_size)
    if test_all is None:
        return scores(forget, retain, predict_probs(model, test_set, batch_size), class_names)
    all_probs, all_labels = predict_probs(model, test_all, batch_size)
    chosen = torch.isin(test_all.ids, test_set.ids)
    return scores(forget, retain, (all_probs[chosen], all_labels[chosen]), class_names,
                  test_all=(all_probs, all_labels))


def gap_to_retrain(metrics: dict[str, Any], retrained: dict[str, Any]) -> dict[str, float]:
    """|metric - retrained metric| for UA, RA, TA, MIA and their mean ("avg_gap"); RTE as a ratio."""
    gaps = {name: abs(metrics[name] - retrained[name]) for name in GAP_METRICS}
    gaps["avg_gap"] = sum(gaps.values()) / len(GAP_METRICS)
    if metrics.get("run_time_seconds") and retrained.get("run_time_seconds"):
        gaps["run_time_ratio"] = metrics["run_time_seconds"] / retrained["run_time_seconds"]
    return gaps
