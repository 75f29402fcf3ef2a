"""Seconds per training step (batch 64, AdamW) of dit-digits-sized DiTs for patch sizes 4 and 2, one thread.

Why dit-digits uses patch 4: `OMP_NUM_THREADS=1 python bench/dit_patch_size.py`.
"""
import time

import torch
from diffusers import DiTTransformer2DModel

torch.set_num_threads(1)
torch.manual_seed(0)
for patch in (4, 2):
    model = DiTTransformer2DModel(num_attention_heads=4, attention_head_dim=32, in_channels=1, out_channels=1,
                                  num_layers=6, sample_size=16, patch_size=patch, num_embeds_ada_norm=10)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x, t, c = torch.randn(64, 1, 16, 16), torch.randint(0, 1000, (64,)), torch.randint(0, 11, (64,))
    for i in range(12):
        if i == 2:
            start = time.perf_counter()
        model(x, t, class_labels=c).sample.pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    print(f"patch {patch}: {(16 // patch) ** 2} tokens, {(time.perf_counter() - start) / 10:.3f} s per step")
