"""What `erase import` costs at real size: a synthetic file in the original layout (random weights, real shapes),
converted by the command in a fresh process; prints wall time, the command's own seconds, file size,
throughput and the process's peak memory.

    python -m bench.import_cost --kind ddpm-seed          # SalUn's CIFAR-10 ckpt.pth: model + Adam + EMA
    python -m bench.import_cost --kind dit --size B/2     # an official DiT .pt at 256 px (+ a random SD-VAE)
    python -m bench.import_cost --kind dit --size XL/2    # DiT-XL-2-256x256.pt (needs ~12 GB of memory)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DIT_SIZES = {"S/2": (12, 384), "B/2": (12, 768), "L/2": (24, 1024), "XL/2": (28, 1152)}  # depth, width


def seed_checkpoint(path: Path) -> None:
    """[model.state_dict() under DataParallel, Adam's state_dict(), epoch, step, EMA shadow] at ch 128."""
    from erase.config import load_recipe
    from erase.models.ddpm_seed import build_unet

    model = build_unet(load_recipe("ddpm-cifar10"))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    raw = model.state_dict()
    torch.save([{f"module.{k}": v for k, v in raw.items()}, optimizer.state_dict(), 2000, 800000,
                {k: v.clone() for k, v in raw.items()}], path)


def dit_checkpoint(path: Path, size: str, vae_folder: Path) -> None:
    """The official DiT state dict (EMA weights, as released) at 256 px, and an SD-VAE folder beside it."""
    from diffusers import AutoencoderKL

    from erase.config import load_recipe

    depth, hidden = DIT_SIZES[size]
    shapes = {"x_embedder.proj.weight": (hidden, 4, 2, 2), "x_embedder.proj.bias": (hidden,),
              "t_embedder.mlp.0.weight": (hidden, 256), "t_embedder.mlp.0.bias": (hidden,),
              "t_embedder.mlp.2.weight": (hidden, hidden), "t_embedder.mlp.2.bias": (hidden,),
              "y_embedder.embedding_table.weight": (1001, hidden), "final_layer.linear.weight": (32, hidden),
              "final_layer.linear.bias": (32,), "final_layer.adaLN_modulation.1.weight": (2 * hidden, hidden),
              "final_layer.adaLN_modulation.1.bias": (2 * hidden,)}
    for i in range(depth):
        for name, rows, cols in (("attn.qkv", 3 * hidden, hidden), ("attn.proj", hidden, hidden),
                                 ("mlp.fc1", 4 * hidden, hidden), ("mlp.fc2", hidden, 4 * hidden),
                                 ("adaLN_modulation.1", 6 * hidden, hidden)):
            shapes[f"blocks.{i}.{name}.weight"], shapes[f"blocks.{i}.{name}.bias"] = (rows, cols), (rows,)
    torch.save({k: torch.randn(s) * 0.02 for k, s in shapes.items()}, path)
    vae = load_recipe("dit-imagenet").architecture["vae"]
    AutoencoderKL(**vae).save_pretrained(vae_folder, safe_serialization=True)


def measure(args) -> dict:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp)
        file = folder / ("ckpt.pth" if args.kind == "ddpm-seed" else "DiT.pt")
        extra: list[str] = []
        if args.kind == "ddpm-seed":
            seed_checkpoint(file)
        else:
            dit_checkpoint(file, args.size, folder / "vae")
            extra = ["--base", str(folder / "vae")]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        command = [sys.executable, "-m", "erase", "import", str(file), "--as", args.kind, "--out",
                   str(folder / "model"), *extra]
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        record = json.loads((folder / "model" / "IMPORT.json").read_text())
        size = file.stat().st_size
        return {"kind": args.kind, "size": args.size if args.kind == "dit" else "cifar10", "file_mb": round(size / 1e6),
                "parameters_m": round(record["parameters"] / 1e6, 1), "wall_seconds": round(wall, 1),
                "import_seconds": record["seconds"], "mb_per_second": round(size / 1e6 / record["seconds"], 1),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6, 2),
                "omp_threads": env["OMP_NUM_THREADS"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["ddpm-seed", "dit"], default="ddpm-seed")
    parser.add_argument("--size", choices=sorted(DIT_SIZES), default="B/2")
    parser.add_argument("--tmp", help="where the synthetic files go (default: the system's temp folder)")
    print(json.dumps(measure(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
