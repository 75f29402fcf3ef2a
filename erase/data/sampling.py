"""Deterministic per-step batches: batch k is a fixed function of (seed, k).

Resuming at step k therefore needs no replay of the data stream, and every process of a multi-process run
can take its own shard of the same global batch. Also `spread`, an evenly spaced subset of grouped data.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class StepBatchSampler(Sampler[list[int]]):
    """Yields the index lists of steps start..stop-1 from a stream of per-epoch permutations."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int, stop: int,
                 rank: int = 0, world_size: int = 1):
        if size <= 0:
            raise ValueError("cannot draw batches from an empty set")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.stop = start, stop
        self.rank, self.world_size = rank, world_size
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.size, generator=g)}  # keep one epoch in memory
        return self._perms[epoch]

    def batch(self, step: int) -> list[int]:
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        indices = [int(self._perm(p // self.size)[p % self.size]) for p in positions]
        return indices[self.rank:: self.world_size]

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def step_loader(dataset: Dataset, batch_size: int, seed: int, start: int, stop: int,
                rank: int = 0, world_size: int = 1) -> DataLoader:
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start, stop, rank, world_size)
    # Its own generator: a DataLoader iterator otherwise draws a seed from the global RNG when it starts,
    # which would shift the noise of the first step after a resume.
    return DataLoader(dataset, batch_sampler=sampler, generator=torch.Generator().manual_seed(seed))


def full_pass_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    """Every item once, in order (saliency masks, Fisher estimates, evaluation)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator().manual_seed(0))


def spread(items: Sequence, limit: int) -> list:
    """At most `limit` items evenly spaced over `items`. Data are often grouped (an image folder lists one
    class after another, t2i-shapes' retain prompts every circle, then every square, then every cross), and
    the first `limit` would miss whole groups."""
    if len(items) <= limit:
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]
