"""SalUn (arXiv 2310.12508): relabel updates restricted to the most forget-salient half of the weights."""
from erase.methods.registry import register
from erase.methods.relabel import Relabel


@register("salun")
class SalUn(Relabel):
    summary = "relabel + alpha * retain, on a weight-saliency mask (top fraction of |forget grad|)"
    params = "saliency"
