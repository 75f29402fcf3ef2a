"""`erase import FILE --as KIND --out DIR`: a checkpoint made elsewhere becomes a model folder (save_pretrained
layout, safetensors, erase_recipe.yaml, IMPORT.json) that every command takes as --model.

Kinds: ddpm-seed (the SalUn / SFR-on DDPM ckpt.pth), sd (a CompVis Stable Diffusion file, or a UNet-only state
dict as ESD and SalUn write, applied to --base), dit (the official DiT .pt). Paths and the output folder are
checked before anything heavy is imported; the conversion lives in erase/models/convert/.
"""
from __future__ import annotations

from pathlib import Path

from erase.config import load_recipe
from erase.errors import UserError

NEXT_STEP = {"ddpm-seed": "python -m erase class --model {out} --forget 0",
             "dit": "python -m erase class --model {out} --forget 0",
             "sd": "python -m erase concept --model {out} --prompt nudity"}


def check_paths(args) -> tuple[Path, Path]:
    file, out = Path(args.file).expanduser(), Path(args.out).expanduser()
    if not file.is_file():
        raise UserError(f"{file} is not a file: give the checkpoint to import")
    if out.exists() and not args.overwrite:
        raise UserError(f"output folder {out} already exists: pass --overwrite to replace it or choose another --out")
    if out.resolve() == file.resolve() or file.resolve().is_relative_to(out.resolve()):
        raise UserError(f"--out {out} would replace the file being imported; choose another --out")
    if args.config and not Path(args.config).expanduser().is_file():
        raise UserError(f"--config {args.config} is not a file")
    if args.base and not Path(args.base).expanduser().is_dir():
        raise UserError(f"--base {args.base} is not a folder")
    return file, out


def main(args, command_line: str) -> int:
    file, out = check_paths(args)
    recipe = load_recipe(args.recipe) if args.recipe else None
    from erase.models.convert import ImportRequest, import_checkpoint

    request = ImportRequest(file=file, kind=args.kind, config=Path(args.config).expanduser() if args.config else None,
                            base=Path(args.base).expanduser() if args.base else None, recipe=recipe,
                            ema=not args.no_ema)
    _, record = import_checkpoint(request, out, overwrite=args.overwrite, command=command_line)
    print(f"wrote {out}: {args.kind} model, {record['parameters'] / 1e6:.1f} M parameters, {record['weights']}, "
          f"recipe {record['recipe']} ({record['seconds']:.1f} s)")
    print(f"use it with --model {out}, e.g. {NEXT_STEP[args.kind].format(out=out)}")
    return 0
