"""Layer-wise partial unlearning (Gogineni & Nadimi, arXiv 2403.07611): label flipping (relabel) or
gradient ascent (`--objective ga`) where each step moves only a fraction of every layer's weights."""
from erase.methods.registry import register
from erase.methods.relabel import Relabel


@register("partial")
class Partial(Relabel):
    summary = "forget + alpha * retain, each step on the top `fraction` of each layer's |gradient|"
    params = "layer-fraction"
