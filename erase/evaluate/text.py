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


@torch.no_grad()
def generate_for_prompts(pipeline, prompts: Sequence[str], per_prompt: int, seed: int, sampling: dict,
                         batch_size: int = 64, desc: str = "sample") -> tuple[torch.Tensor, torch.Tensor]:
    """`per_prompt` images of each prompt: images in [-1, 1] and the index of each image's prompt."""
    order, seeds = [], []
    for i, prompt in enumerate(prompts):
        order += [i] * per_prompt
        seeds += prompt_seeds(seed, prompt, per_prompt)
    chunks = []
    for start in progress(range(0, len(order), batch_size), desc=desc, leave=False):
        index = order[start:start + batch_size]
        gens = seeded_generators(seeds[start:start + batch_size], pipeline.device)
        out = pipeline(prompt=[prompts[i] for i in index], generator=gens, output_type="pt", **sampling)
        chunks.append(out.images.cpu().float() * 2 - 1)
    return torch.cat(chunks), torch.tensor(order)
