"""Sampling text-to-image models for evaluation: images per prompt, each with its own seed."""
from __future__ import annotations

import zlib
from typing import Sequence

import torch

from erase.models.pipeline import seeded_generators
from erase.progress import progress


def prompt_seeds(seed: int, prompt: str, count: int) -> list[int]:
    """Image j of a prompt always gets the same seed, wherever the prompt sits in a list."""
    key = zlib.crc32(prompt.encode("utf-8")) % 100_003
    return [seed * 1_000_003 + key * 10_007 + j for j in range(count)]


def row_generator(seed: int, index: int, numel: int) -> torch.Generator:
    """The noise of image `index` of a prompt whose CSV row gives `seed`, as ESD's and SalUn's evaluation
    scripts draw it: torch.manual_seed(seed), then randn((n, C, H, W)) on the CPU. The returned CPU generator
    has the noise of the `index` earlier images drawn already."""
    generator = torch.Generator().manual_seed(int(seed))
    if index:
        torch.randn(index * numel, generator=generator)
    return generator


def latent_numel(pipeline) -> int:
    """Numbers of noise per image at the pipeline's default size (SD: the latent; pixel models: the image)."""
    config = pipeline.unet.config
    return config.in_channels * config.sample_size ** 2


def batches(order: list[int], scales: list[float] | None, batch_size: int):
    """(start, stop) runs of at most `batch_size` images that share one guidance scale."""
    start = 0
    while start < len(order):
        stop = min(len(order), start + batch_size)
        if scales is not None:
            stop = next((k for k in range(start + 1, stop) if scales[k] != scales[start]), stop)
        yield start, stop
        start = stop


@torch.no_grad()
def generate_for_prompts(pipeline, prompts: Sequence[str], per_prompt: int, seed: int, sampling: dict,
                         batch_size: int = 64, desc: str = "sample", seeds: Sequence[int] | None = None,
                         guidance: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_prompt` images of each prompt: images in [-1, 1] and the index of each image's prompt.

    `seeds`, `guidance` (one per prompt, from an I2P-style CSV): each prompt's images start from the noise its
    own seed gives (as the ESD and SalUn evaluation scripts draw it) and use its own guidance scale."""
    order, generators, scales = [], [], None if guidance is None else []
    numel = latent_numel(pipeline) if seeds is not None else 0
    for i, prompt in enumerate(prompts):
        order += [i] * per_prompt
        if seeds is not None:
            generators += [row_generator(seeds[i], j, numel) for j in range(per_prompt)]
        else:
            generators += seeded_generators(prompt_seeds(seed, prompt, per_prompt), pipeline.device)
        if scales is not None:
            scales += [float(guidance[i])] * per_prompt
    chunks = []
    for start, stop in progress(list(batches(order, scales, batch_size)), desc=desc, leave=False):
        settings = dict(sampling)
        if scales is not None:
            settings["guidance_scale"] = scales[start]
        out = pipeline(prompt=[prompts[i] for i in order[start:stop]], generator=generators[start:stop],
                       output_type="pt", **settings)
        chunks.append(out.images.cpu().float() * 2 - 1)
    return torch.cat(chunks), torch.tensor(order)
