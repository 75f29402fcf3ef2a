"""Forget and retain sets of a concept: images the original text-to-image model generates for the concept's
forget and retain prompts, with the token ids each objective needs. Generated once and stored in the run folder
(data/), so a resumed run trains on the same images. The images also go to the evaluation cache, keyed by the
weights and the generation settings: a second method erasing the same concept from the same model (`erase
compare`, a method sweep) trains on the same images without generating them again."""
from __future__ import annotations

import math
from pathlib import Path

from safetensors.torch import load_file, save_file

from erase.config import RunConfig
from erase.data.datasets import OPTIONAL_PROMPT_IDS, PromptImages
from erase.data.prompts import ConceptPrompts
from erase.evaluate.cache import cached
from erase.evaluate.text import generate_for_prompts
from erase.files import write_json_atomic
from erase.models import GeneratorBundle
from erase.sample import to_uint8

DATA_SEED_OFFSET = 7919  # forget/retain images use other seeds than the evaluation images


def generate_data(bundle: GeneratorBundle, prompts: list[str], total: int, config: RunConfig, desc: str,
                  anchors: list[str] | None = None, concept: str | None = None,
                  neutral: list[str] | None = None, image_prompts: list[str] | None = None,
                  images: bool = True) -> PromptImages:
    """`total` images for `prompts` (the same number each) with the token ids of what the objectives need:
    each image's anchor and neutral prompt (one per prompt, when given) and the concept prompt.
    `image_prompts`: draw each image for this prompt instead (one per prompt; Concept Ablation: the anchor).
    Without `images` the rows carry the token ids alone (`images` None) and nothing is drawn."""
    import torch

    per_prompt = max(1, math.ceil(total / len(prompts)))
    seed, sampling, batch_size = config.seed + DATA_SEED_OFFSET, bundle.recipe.sampling, config.evaluate.get(
        "batch_size", 64)
    drawn = list(image_prompts or prompts)

    def generate():
        pictures, index = generate_for_prompts(bundle.pipeline, drawn, per_prompt, seed, sampling, batch_size,
                                               desc=desc)
        return {"images": to_uint8(pictures), "index": index}  # uint8: 4x smaller; items convert back

    if images:
        key = {"prompts": drawn, "per_prompt": per_prompt, "seed": seed, "sampling": sampling,
               "batch_size": batch_size}
        generated = cached("concept-data", [bundle.denoiser, *bundle.adapter.frozen_modules()], key, generate)
        pictures, index = generated["images"], generated["index"]
    else:
        pictures, index = None, torch.arange(len(drawn)).repeat_interleave(per_prompt)  # generate()'s order
    tokenize = bundle.adapter.tokenize

    def per_image(texts: list[str] | None):
        return tokenize(texts)[index] if texts else None

    concept_ids = tokenize([concept]).expand(len(index), -1).clone() if concept else None
    return PromptImages(pictures, tokenize(prompts)[index], per_image(anchors), concept_ids, per_image(neutral))


def save_data(data: PromptImages, path: Path) -> None:
    tensors = {"images": data.images.contiguous(), "input_ids": data.input_ids.contiguous()}
    for name in OPTIONAL_PROMPT_IDS:
        if getattr(data, name) is not None:
            tensors[name] = getattr(data, name).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def load_data(path: Path) -> PromptImages:
    tensors = load_file(str(path))
    return PromptImages(tensors["images"], tensors["input_ids"], **{name: tensors.get(name)
                                                                     for name in OPTIONAL_PROMPT_IDS})


def concept_data(bundle: GeneratorBundle, prompts: ConceptPrompts, config: RunConfig, folder: Path,
                 forget_images: str = "forget", with_retain: bool = True, images: bool = True):
    """(forget set, retain set): from data/ in the run folder, or generated now and stored there.
    `forget_images`: what the forget images show, the forget prompts or their anchors (a method's choice).
    Without `with_retain` (a method that trains on forget data only, such as ESD) no retain images are made.
    Without `images` (a closed-form edit that reads only the prompts, run with no steps) both sets carry token
    ids alone, and nothing is drawn or stored: `erase attack` draws the images when it needs them."""
    train = bundle.recipe.train
    sets = []
    for name, texts, total in (("forget", prompts.forget, train.get("forget_images", 64)),
                               ("retain", prompts.retain if with_retain else [], train.get("retain_images", 64))):
        path = folder / "data" / f"{name}.safetensors"
        if not texts:
            sets.append(None)
        elif images and path.is_file():
            sets.append(load_data(path))
        else:
            extras = (prompts.anchors, prompts.esd_prompt, prompts.neutral) if name == "forget" else ()
            drawn = prompts.anchors if name == "forget" and forget_images == "anchor" else None
            data = generate_data(bundle, texts, int(total), config, f"generate {name} data", *extras,
                                 image_prompts=drawn, images=images)
            if images:
                save_data(data, path)
            sets.append(data)
    write_json_atomic(folder / "data" / "prompts.json", {"forget": prompts.forget, "anchors": prompts.anchors,
                                                         "neutral": prompts.neutral, "retain": prompts.retain,
                                                         "esd": prompts.esd_prompt,
                                                         "forget_images": forget_images})
    return sets[0], sets[1]
