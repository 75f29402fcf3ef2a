"""Concept Ablation (Kumari et al. 2023, nupurkmr9/concept-ablation), the model-based variant: on images the
original model generates for the anchor prompts, the prediction for the concept prompt is trained toward the
model's own (stop-gradient) prediction for the anchor prompt, so the concept prompt comes to draw the anchor.

In erase's terms: the relabel objective on forget data whose images show the anchors (`forget_images`), plus
alpha times the retain loss, on the cross-attention keys and values (CA's `crossattn_kv`; `--params
cross-attn` or `all` train more).
"""
from erase.methods.registry import register
from erase.methods.relabel import Relabel


@register("ca")
class ConceptAblation(Relabel):
    summary = ("Concept Ablation: on images of the anchor, the concept prompt's prediction pulled to the anchor "
               "prompt's, + alpha * retain")
    params = "cross-attn-kv"
    forget_images = "anchor"
