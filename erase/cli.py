"""Command-line parsing only: each subcommand is one module in erase/commands, whose `main(args, command_line)`
runs it."""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Sequence

from erase.errors import Interrupted, UserError

# the kinds `erase import` knows (erase/models/convert KINDS; listed here so parsing stays light)
IMPORT_KINDS = ("ddpm-seed", "sd", "dit")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (plus exit code 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_setting(text: str) -> tuple[str, str]:
    """KEY=VALUE, the value kept as text: the method's declaration of KEY reads it (erase/settings.py), so
    `--set alpha=1e-3` is a number and `--set form=fast` a choice, and a bad value is refused with what is
    allowed once the method is known."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_run_options(p: argparse.ArgumentParser, sampling: bool = True) -> None:
    """Options shared by every command that unlearns and writes a run folder (`sampling`: generators)."""
    p.add_argument("--method", default="salun", help="unlearning method (see `erase list`)")
    p.add_argument("--objective", help="override the method's forget objective: ga, relabel, esd, adaptive-ga")
    p.add_argument("--params", help="override the parameter selection: all, saliency, ...")
    p.add_argument("--steps", help="unlearning steps (default: the recipe's for this method)")
    p.add_argument("--lr", help="learning rate")
    p.add_argument("--batch-size", help="forget and retain batch size")
    p.add_argument("--seed", type=int, default=0, help="seed for data order, noise and evaluation samples")
    p.add_argument("--set", dest="settings", action="append", type=parse_setting, default=[], metavar="KEY=VALUE",
                   help="a method setting, e.g. --set alpha=0.01 --set mask_ratio=0.3 (see `erase list`)")
    p.add_argument("--weights", help="the model's weights: a save_pretrained folder, or for ddpm-seed, sd and dit "
                   "models a single checkpoint file, converted on load (as `erase import`)")
    p.add_argument("--init", default="pretrained", choices=["pretrained", "random"],
                   help="random: random weights of the recipe's architecture (speed measurements)")
    p.add_argument("--out", help="run folder (default runs/<date>-<model>-<method>-<target>)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run folder from its last checkpoint")
    p.add_argument("--checkpoint-every", type=int, help="save resumable state every N steps")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints/ after success")
    p.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"],
                   help="autocast the training step through accelerate (bf16 also works on CPU)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass (diffusers models): less memory, more time")
    if sampling:
        p.add_argument("--samples", type=int, help="evaluation samples per retained class")
        p.add_argument("--forget-samples", type=int, help="evaluation samples of the forgotten class")
        add_fid_options(p)
    p.add_argument("--allow-download", action="store_true", help="allow model hub access (off by default)")


def add_fid_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inception-weights", metavar="PATH", help="clean-fid's Inception weights "
                   "(inception-2015-12-05.pt, or a folder holding it): report fid_clean and kid instead of "
                   "fid_probe (default: $ERASE_INCEPTION, then clean-fid's cache /tmp/inception-2015-12-05.pt; "
                   "'none': fid_probe)")
    p.add_argument("--fid-mode", choices=["clean", "legacy_tensorflow"], help="clean-fid mode (default clean)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="erase", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.description = ("Make a trained image generator or classifier forget a class or a concept, "
                          "and measure that it did.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("class", help="forget a class of a class-conditional generator (DDPM, DiT)")
    p.add_argument("--model", default="ddpm-digits", help="model name (see `erase list`) or a model folder")
    p.add_argument("--forget", action="append", help="class id or name to forget (repeat for several)")
    p.add_argument("--data", metavar="DIR", help="training images for models without an embedded world: "
                   "CIFAR-10 python batches or an ImageFolder (default: sampled from the original model)")
    p.add_argument("--probe", metavar="PATH", help="the probe that judges samples (ImageNet: ResNet-50 "
                   "weights as .safetensors); default: the recipe's")
    add_run_options(p)

    p = sub.add_parser("classify", help="make an image classifier forget a class or training samples")
    p.add_argument("--model", default="digits-cnn", help="classifier name (see `erase list`) or a model folder")
    forget = p.add_argument_group("forget set (exactly one)")
    forget.add_argument("--forget-class", metavar="CLASS", help="forget every training image of this class")
    forget.add_argument("--forget-random", metavar="FRACTION", help="forget a random fraction of the training "
                        "set, drawn with --seed")
    forget.add_argument("--forget-indices", metavar="FILE", help="forget the training-set sample ids listed in "
                        "FILE, one per line")
    p.add_argument("--data", metavar="DIR", help="dataset folder: CIFAR-10 python batches or an ImageFolder "
                   "(DIR/train + DIR/test, or DIR/<class> split 80/20)")
    add_run_options(p, sampling=False)

    p = sub.add_parser("concept", help="erase a concept from a text-to-image model (Stable Diffusion layout)")
    p.add_argument("--model", default="sd-v1-4", help="text-to-image model name (see `erase list`) or a model folder")
    p.add_argument("--prompt", help="the concept to erase: nudity, a style (\"van gogh style\"), or for t2i-shapes "
                   "a shape, colour or texture")
    p.add_argument("--anchor", help="what the concept becomes for the relabel objective (and esd_prompts=anchor): "
                   "for t2i-shapes another value of the same attribute (default: the recipe's, else the next "
                   "value), otherwise a prompt that replaces every anchor prompt")
    p.add_argument("--tiny", action="store_true", help="with --init random: a tiny random SD stack (tests, timing)")
    p.add_argument("--images-per-prompt", type=int, help="evaluation images per evaluation prompt")
    add_run_options(p, sampling=False)

    p = sub.add_parser("sample", help="sample a grid from a model: one row per class or per prompt")
    p.add_argument("--model", default="ddpm-digits", help="model name or a model folder (runs/<run>/model)")
    p.add_argument("--classes", default="0-9", help="classes, e.g. 0-9, 3 or 1,4,7")
    p.add_argument("--prompts", nargs="+", metavar="PROMPT", help="text-to-image models: one row per prompt")
    p.add_argument("--prompts-file", metavar="FILE", help="text-to-image models: prompts, one per line")
    p.add_argument("--per-class", type=int, default=8, help="images per class (or per prompt)")
    p.add_argument("--out", default="grid.png", help="PNG file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance-scale", type=float)
    p.add_argument("--inference-steps", type=int)
    p.add_argument("--weights", help="a save_pretrained folder, or a single checkpoint file of a ddpm-seed, sd or "
                   "dit model (converted on load)")
    p.add_argument("--init", default="pretrained", choices=["pretrained", "random"])

    p = sub.add_parser("eval", help="re-score a finished run (original and unlearned model) with new samples")
    p.add_argument("--run", required=True, metavar="RUN", help="a finished run folder (runs/<run>)")
    p.add_argument("--samples", type=int, help="samples per retained class (default: the run's)")
    p.add_argument("--forget-samples", type=int, help="samples of the forgotten class (default: the run's)")
    p.add_argument("--seed", type=int, help="seed of the evaluation samples (default: the run's)")
    add_fid_options(p)
    p.add_argument("--update", action="store_true", help="make these scores the run's EVAL.json (the old one "
                   "is kept under evals/) and redraw its grids, plots and SUMMARY.md")

    p = sub.add_parser("compare", help="one table (markdown + CSV) and plots over several finished runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, e.g. runs/*")
    p.add_argument("--out", default="compare", help="folder for compare.md, compare.csv and the plots")

    p = sub.add_parser("list", help="models, methods and their settings, parameter selections, objectives, metrics, "
                       "worlds")
    p.add_argument("--settings", action="store_true", help="every setting (type, range, default) as markdown tables")

    p = sub.add_parser("import", help="a checkpoint made elsewhere (seed ckpt.pth, CompVis/ESD file, DiT .pt) "
                       "-> a model folder every command takes as --model")
    p.add_argument("file", metavar="FILE", help="the checkpoint: .pth/.pt/.ckpt (read with weights_only=True) or "
                   ".safetensors")
    p.add_argument("--as", dest="kind", required=True, choices=IMPORT_KINDS,
                   help="ddpm-seed: SalUn/SFR-on DDPM ckpt.pth; sd: CompVis Stable Diffusion file or a UNet-only "
                   "state dict (ESD, SalUn); dit: the official DiT .pt")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    p.add_argument("--config", metavar="FILE", help="ddpm-seed: the run's YAML config (default: SalUn's CIFAR-10); "
                   "sd: the original LDM yaml for UNet/VAE; dit: settings (model: DiT-XL/2, image_size, "
                   "num_attention_heads)")
    p.add_argument("--base", metavar="DIR", help="sd: the diffusers SD folder the file applies to (default: the "
                   "recipe's); dit: a DiT pipeline or SD-VAE folder holding the VAE")
    p.add_argument("--recipe", metavar="NAME|FILE", help="the recipe written with the model (default: ddpm-cifar10, "
                   "dit-imagenet, or the sd base's own / sd-v1-4)")
    p.add_argument("--no-ema", action="store_true", help="import the raw weights even when the file has EMA ones")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    p = sub.add_parser("pretrain", help="rebuild an embedded model (and its probe) from scratch")
    p.add_argument("name", help="an embedded model, e.g. ddpm-digits")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int, help="override the recipe's training steps")
    p.add_argument("--rescore", action="store_true", help="generators: score the shipped weights again with the "
                   "recipe's current sampling settings and update PRETRAIN.json, without training")
    p.add_argument("--data", metavar="DIR", help="classifiers: train on this dataset folder (needs --out "
                   "for an embedded model)")
    p.add_argument("--out", metavar="DIR", help="classifiers: write the model here instead of its recipe's "
                   "weights folder")
    log = p.add_argument_group("amnesiac update logs (classifiers)")
    log.add_argument("--log-updates", action="store_true", help="store the parameter update of every batch that "
                     "holds a logged sample (for --method amnesiac / partial-amnesiac)")
    log.add_argument("--log-classes", action="append", default=[], metavar="CLASS", help="log the batches with "
                     "samples of this class (repeatable)")
    log.add_argument("--log-random", type=float, metavar="FRACTION", help="log the batches with a random "
                     "fraction of the training set (drawn as classify --forget-random with --log-seed)")
    log.add_argument("--log-seed", type=int, default=0, help="seed of --log-random (classify's --seed)")
    log.add_argument("--log-indices", metavar="FILE", help="log the batches with these training-set sample ids")
    log.add_argument("--log-keep", type=float, action="append", metavar="FRACTION", help="store each update "
                     "pruned to this fraction per layer, by magnitude (repeatable; default 1 = full updates)")
    return parser


# command name -> module under erase/commands (imported only when the command runs, so a refusal is fast)
COMMANDS = {"class": "class_", "classify": "classify", "concept": "concept", "sample": "sample", "eval": "eval",
            "compare": "compare", "list": "list_", "pretrain": "pretrain", "import": "import_"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error already printed as one line (2)
        return int(exc.code or 0)
    if getattr(args, "allow_download", False):
        import os

        os.environ["HF_HUB_OFFLINE"] = "0"
        os.environ["TRANSFORMERS_OFFLINE"] = "0"
    command_line = "python -m erase " + " ".join(shlex.quote(a) for a in argv)
    try:
        return importlib.import_module(f"erase.commands.{COMMANDS[args.command]}").main(args, command_line)
    except UserError as exc:
        print(f"erase {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        where = f"; continue with `python -m erase {args.command} --resume {exc.checkpoint.parent.parent}`" \
            if exc.checkpoint else ""
        print(f"erase {args.command}: interrupted at step {exc.step}{where}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"erase {args.command}: interrupted", file=sys.stderr)
        return 130
