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
    p.add_argument("--steps", help="N: exactly N steps; auto: the recipe's steps are a budget and a cheap held-out "
                   "check every few steps stops once the target is forgotten (docs/auto-steps.md). Default: auto on "
                   "a model of your own data whose recipe states epochs, else the recipe's steps for this method")
    p.add_argument("--target-ua", metavar="PERCENT", help="--steps auto: the UA the check must reach (default 99)")
    p.add_argument("--max-retain-drop", metavar="POINTS", help="--steps auto: never keep a model that lost more "
                   "retained accuracy than this on the check (default 2)")
    p.add_argument("--epochs", metavar="E", help="--steps auto with a budget of E passes over the forget and retain "
                   "data the run trains on (default: the recipe's budget)")
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


def add_robust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robust", type=int, metavar="K", help="robust unlearning: before each step, K steps of the "
                   "embedding attack against the current model; the method's step is then taken under the "
                   "attacked conditioning (class embedding, or free prompt tokens) as well as the plain one "
                   "(docs/robustness.md)")


def add_eval_prompts_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-prompts", metavar="FILE.csv", help="judge the concept on the rows of an I2P-style CSV: "
                   "column prompt, and evaluation_seed, evaluation_guidance, categories when present (each row's "
                   "own seed and guidance scale, as the ESD and SalUn nudity evaluations)")


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
    add_robust_option(p)
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
    p.add_argument("--clip", metavar="DIR", help="a local CLIP model folder (transformers CLIPModel, tokenizer, "
                   "preprocessor_config.json): adds the CLIP score of the retained prompts' images")
    add_eval_prompts_option(p)
    add_robust_option(p)
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

    p = sub.add_parser("eval", help="re-score a finished run, or judge an unlearned model made elsewhere against "
                       "its original")
    p.add_argument("--run", metavar="RUN", help="re-score a finished run folder (runs/<run>)")
    p.add_argument("--model", metavar="UNLEARNED", help="judge this unlearned model (a model folder or name) "
                   "against --original; writes a run folder that `erase compare` tables with erase's runs")
    p.add_argument("--original", metavar="ORIGINAL", help="with --model: the model it was unlearned from (its "
                   "recipe gives the classes, probe, data and sampling settings)")
    p.add_argument("--forget", action="append", help="with --model, class-conditional models: the forgotten class "
                   "(id or name; repeat for several)")
    p.add_argument("--prompt", help="with --model, text-to-image models: the erased concept, e.g. nudity")
    p.add_argument("--probe", metavar="PATH", help="with --model: the probe that judges samples (default: the "
                   "original's)")
    p.add_argument("--data", metavar="DIR", help="with --model: the real images FID compares with (default: the "
                   "original's data)")
    p.add_argument("--label", help="with --model: the name of the unlearned model in EVAL.json and compare tables "
                   "(default: the method of the erase run it comes from, else 'external')")
    add_eval_prompts_option(p)
    p.add_argument("--images-per-prompt", type=int, help="text-to-image: evaluation images per prompt")
    p.add_argument("--out", help="with --model: the run folder (default runs/<date>-<original>-<label>-<target>)")
    p.add_argument("--overwrite", action="store_true", help="with --model: replace --out if it exists")
    p.add_argument("--samples", type=int, help="samples per retained class (default: the run's or recipe's)")
    p.add_argument("--forget-samples", type=int, help="samples of the forgotten class (default: the run's or "
                   "recipe's)")
    p.add_argument("--seed", type=int, help="seed of the evaluation samples (default: the run's, else 0)")
    add_fid_options(p)
    p.add_argument("--update", action="store_true", help="with --run: make these scores the run's EVAL.json (the "
                   "old one is kept under evals/) and redraw its grids, plots and SUMMARY.md")

    p = sub.add_parser("attack", help="does it stay forgotten? guidance sweep, relearning and embedding attack on a "
                       "run's original, unlearned and retrained-reference models")
    p.add_argument("--run", required=True, metavar="RUN", help="a finished `erase class` or `erase concept` run "
                   "folder (runs/<run>)")
    p.add_argument("--attacks", metavar="NAMES", help="comma-separated, from guidance, relearn, embedding "
                   "(default: all three)")
    p.add_argument("--set", dest="settings", action="append", type=parse_setting, default=[], metavar="KEY=VALUE",
                   help="an attack budget, e.g. --set guidance_scales=1,3,7.5 --set relearn_steps=10,50 (see "
                   "`erase list --settings`)")

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

    p = sub.add_parser("pretrain", help="train a model from scratch: an embedded model, or a generator and the "
                       "probe that judges it on your own data")
    p.add_argument("name", nargs="?", help="an embedded model (e.g. ddpm-digits), a recipe with a pretrain section "
                   "(resnet18-cifar10, ddpm-cifar10 --data DIR), `ddpm` (a class-conditional DDPM of --data) or "
                   "`probe` (the classifier that judges samples of --data)")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int, help="override the recipe's training steps")
    p.add_argument("--rescore", action="store_true", help="generators: score the shipped weights again with the "
                   "recipe's current sampling settings and update PRETRAIN.json, without training")
    p.add_argument("--data", metavar="DIR", help="the dataset: CIFAR-10 python batches or an ImageFolder "
                   "(DIR/<class>/*, or DIR/train + DIR/test); class names are the folder names")
    p.add_argument("--out", metavar="DIR", help="the model folder to write (ddpm, probe: required; a recipe: "
                   "default its weights folder)")
    p.add_argument("--overwrite", action="store_true", help="ddpm, probe, ddpm-cifar10: replace --out if it exists")
    own = p.add_argument_group("a generator or probe of your data (ddpm, probe, ddpm-cifar10 --data)")
    own.add_argument("--resolution", type=int, help="image side (default: the data's median side rounded to a "
                     "power of two, 8 to 64)")
    own.add_argument("--channels", type=int, choices=[1, 3], help="1 grayscale, 3 RGB (default: 1 when the images "
                     "are grayscale)")
    own.add_argument("--batch-size", type=int)
    own.add_argument("--lr", type=float)
    own.add_argument("--ema-decay", type=float, help="generators: EMA of the weights (0: none)")
    own.add_argument("--flip", action="store_true", help="generators: random horizontal flips (not for letters "
                     "or digits)")
    own.add_argument("--width", type=int, help="ddpm: channels of the UNet's first level (default 32 up to "
                     "16 px, 128 above)")
    own.add_argument("--channel-mult", metavar="M,M,...", help="ddpm: channels per level as multiples of --width; "
                     "the number of levels (default 1,2,2 at 16 px, 1,2,2,2 at 32 px)")
    own.add_argument("--layers-per-block", type=int, help="ddpm: ResNet layers per level (default 1 up to 16 px, "
                     "2 above)")
    own.add_argument("--attention", metavar="SIDES", help="ddpm: level sides with self-attention, e.g. 16 or "
                     "16,8; none (default: none up to 16 px, 16 above)")
    own.add_argument("--probe", metavar="DIR", help="ddpm, ddpm-cifar10: the probe (from `pretrain probe`) that "
                     "judges the generator; erase class uses it with no other flag")
    own.add_argument("--arch", choices=["small-cnn", "resnet34-cifar"], help="probe: the classifier (default: "
                     "small-cnn up to 16 px, resnet34-cifar above)")
    own.add_argument("--score-samples", type=int, metavar="N", help="generators with a probe: samples per class "
                     "of the probe score in PRETRAIN.json (default: the recipe's evaluation samples)")
    own.add_argument("--grid-every", type=int, metavar="N", help="generators: a sample grid every N steps into "
                     "OUT/grids/")
    own.add_argument("--checkpoint-every", type=int, metavar="N", help="generators: resumable state every N steps")
    own.add_argument("--keep-checkpoints", action="store_true", help="generators: keep OUT/checkpoints at the end")
    own.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"],
                     help="generators: autocast the training step through accelerate")
    own.add_argument("--resume", metavar="DIR", help="continue an interrupted generator job (its --out) from "
                     "its last checkpoint")
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
            "compare": "compare", "attack": "attack", "list": "list_", "pretrain": "pretrain", "import": "import_"}


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
