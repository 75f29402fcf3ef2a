"""ESD (Gandikota et al. 2023, rohitgandikota/erasing): the prediction for the target is trained toward the
frozen model's negatively guided prediction, eps*(null) - eta * (eps*(c) - eps*(null)). Forget data only.

`esd-x` trains the conditioning layers (cross-attention; for class-conditional models the class path),
`esd-u` everything else; `esd` is esd-u, the variant the ESD authors use for objects and global concepts.
"""
from erase.methods.ga import GradientAscent
from erase.methods.registry import register


@register("esd")
class ESD(GradientAscent):
    summary = "match the frozen model's negatively guided prediction (esd-u parameters)"
    objective = "esd"
    params = "non-cross-attn"


@register("esd-u")
class ESDu(ESD):
    summary = "ESD on everything but the conditioning layers, time embedding and output layers"


@register("esd-x")
class ESDx(ESD):
    summary = "ESD on the conditioning layers only (cross-attention / class-embedding path)"
    params = "cross-attn"
