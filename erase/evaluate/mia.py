"""Membership inference as in SalUn / "Model Sparsity Can Simplify Machine Unlearning" (SVC_MIA).

A shadow attack learns members vs non-members from one feature of the model's softmax output: members are
retain samples (as many as there are test samples, spread over the retain set), non-members the test
samples. An RBF support vector classifier (C=3, gamma='auto') is fitted per feature and predicts the forget samples.
MIA-efficacy = the fraction of forget samples the attack calls non-members (higher = the model treats the
forget set like data it never saw). The headline is the prediction-confidence attack, as in those papers;
correctness, entropy, modified entropy and the whole probability vector are reported beside it.
"""
from __future__ import annotations

import numpy as np
import torch

FEATURES = ("confidence", "correctness", "entropy", "m_entropy", "prob")


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """-sum p log p per row, with 0 log 0 = 0."""
    return -torch.where(probs > 0, probs * probs.log(), torch.zeros_like(probs)).sum(-1)


def modified_entropy(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """Song & Mittal's Mentr: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i).

    The SalUn code indexes `probs[:, labels]` (every row at every label) and logs p instead of 1 - p; this is
    the formula of the paper it cites, per row.
    """
    log_p = probs.clamp_min(eps).log()
    log_not_p = (1 - probs).clamp_min(eps).log()
    true = torch.nn.functional.one_hot(labels, probs.shape[1]).bool()
    terms = torch.where(true, (1 - probs) * log_p, probs * log_not_p)
    return -terms.sum(-1)


def features(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Each attack's input, one row per sample."""
    probs, labels = probs.double(), labels.long()
    confidence = probs.gather(1, labels[:, None])
    correct = (probs.argmax(1) == labels).double()[:, None]
    return {
        "confidence": confidence.numpy(),
        "correctness": correct.numpy(),
        "entropy": entropy(probs)[:, None].numpy(),
        "m_entropy": modified_entropy(probs, labels)[:, None].numpy(),
        "prob": probs.numpy(),
    }


def svc():
    from sklearn.svm import SVC

    return SVC(C=3, gamma="auto", kernel="rbf")


def fit_attack(member: np.ndarray, non_member: np.ndarray):
    """The SVC fitted on member (1) vs non-member (0) rows, and its held-out accuracy on them.

    The held-out accuracy is a 2-fold cross-validation on the shadow rows (halves of equal class balance, a fixed
    shuffle): the shadow sets are of equal size, so 50 % is chance, and an attack that cannot tell members from
    non-members it was not fitted to says nothing about the forget set. Scoring it on its own training rows
    would flatter it (a probability-vector SVC memorises its shadow data)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.concatenate([member, non_member]).reshape(len(member) + len(non_member), -1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(non_member))])
    attack = svc().fit(x, y)
    if min(len(member), len(non_member)) < 2:
        return attack, float("nan")
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    return attack, float(cross_val_score(svc(), x, y, cv=folds).mean())


def called_non_members(attack, target: np.ndarray) -> float:
    """The fraction of `target` rows a fitted attack predicts 0 (non-member)."""
    return float(1 - attack.predict(target.reshape(len(target), -1)).mean())


def mia_efficacy(member_probs: torch.Tensor, member_labels: torch.Tensor, non_member_probs: torch.Tensor,
                 non_member_labels: torch.Tensor, forget_probs: torch.Tensor,
                 forget_labels: torch.Tensor) -> tuple[dict[str, float], dict[str, float]]:
    """MIA-efficacy on the forget set for every attack feature (SalUn's SVC_MIA with target_train=None), and
    each attack's held-out accuracy on its shadow data."""
    shadow_in = features(member_probs, member_labels)
    shadow_out = features(non_member_probs, non_member_labels)
    target = features(forget_probs, forget_labels)
    rates, shadow_accuracy = {}, {}
    for name in FEATURES:
        attack, shadow_accuracy[name] = fit_attack(shadow_in[name], shadow_out[name])
        rates[name] = called_non_members(attack, target[name])
    return rates, shadow_accuracy
