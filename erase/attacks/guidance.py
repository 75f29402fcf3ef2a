"""Guidance sweep: the forgotten class sampled at several classifier-free guidance scales, with the retained
classes' probe accuracy at each, because an erasure tuned at the recipe's scale may leak at another (issue 20:
SalUn's retained digits fall from 99.8 % to 93.1 % at guidance 1 while holding at the run's guidance 3)."""
from __future__ import annotations

from typing import Any

from erase.settings import Float, Int, Numbers

summary = "UA and retained accuracy at several guidance scales"
settings = (
    Numbers("guidance_scales", (1.0, 2.0, 3.0, 5.0, 7.5), "guidance scales of the sweep (Stable Diffusion: 3, 7.5, 12)",
            each=Float("guidance_scales", 1.0, ge=0)),
    Int("guidance_forget_samples", 32, "samples of the forgotten class per scale", ge=1),
    Int("guidance_retain_samples", 8, "samples per retained class (class models) or retained prompt image per "
        "scale", ge=0),
)
FAMILY_DEFAULTS = {"sd": {"guidance_scales": (3.0, 7.5, 12.0)}}


def run(subjects, values: dict[str, Any]) -> dict[str, Any]:
    """One budget per scale: success (share of the forgotten class's samples judged the forgotten class) and
    retained accuracy of each model."""
    budgets = []
    for scale in values["guidance_scales"]:
        row: dict[str, Any] = {"budget": f"guidance {scale:g}", "guidance_scale": scale}
        for which in subjects.model_names:
            row[which] = subjects.cached("guidance", which, {**values, "guidance_scales": scale},
                                         lambda: subjects.judge_at_scale(which, scale, values))
        budgets.append(row)
    return {"budgets": budgets}
