"""`erase sample`: a labelled grid from any generator, name or folder: one row per class, or per prompt for
text-to-image models."""
from __future__ import annotations

from pathlib import Path

from erase.config import check_positive, load_recipe
from erase.data.class_names import parse_classes
from erase.errors import UserError
from erase.models import check_weights


def read_prompts(prompts: list[str] | None, prompts_file: str | None) -> list[str]:
    """--prompts and --prompts-file together; empty or whitespace-only prompts are refused."""
    chosen = list(prompts or [])
    if prompts_file:
        path = Path(prompts_file)
        if not path.is_file():
            raise UserError(f"--prompts-file {path} does not exist")
        chosen += [line for line in path.read_text().splitlines() if line.strip()]
    if not chosen:
        raise UserError("a text-to-image model needs prompts: pass --prompts \"a red triangle\" ... or "
                        "--prompts-file FILE")
    if any(not p.strip() for p in chosen):
        raise UserError("--prompts contains an empty prompt: give each prompt some text")
    return [" ".join(p.split()) for p in chosen]


def sample_grid(model: str, classes: str, per_class: int, out: str, seed: int = 0,
                guidance_scale: float | None = None, inference_steps: int | None = None,
                weights: str | None = None, init: str = "pretrained", prompts: list[str] | None = None,
                prompts_file: str | None = None) -> Path:
    recipe = load_recipe(model)
    text_to_image = recipe.family == "sd"
    if text_to_image:
        chosen = read_prompts(prompts, prompts_file)
    elif prompts or prompts_file:
        raise UserError(f"{recipe.name} is class-conditional: use --classes, not --prompts")
    else:
        chosen = parse_classes(classes, recipe.num_classes, recipe.class_index)
    per_class = check_positive("--per-class", per_class)
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {out!r}")
    sampling = dict(recipe.sampling)
    if guidance_scale is not None:
        sampling["guidance_scale"] = guidance_scale
    if inference_steps is not None:
        sampling["num_inference_steps"] = check_positive("--inference-steps", inference_steps)
    check_weights(recipe, weights, init)
    import torch

    from erase.evaluate.probe import generate_for_classes
    from erase.models import load_generator
    from erase.sample import class_rows, labelled_grid, prompt_rows, save_image_atomic

    torch.manual_seed(seed)
    bundle = load_generator(recipe, weights, init)
    batch_size = recipe.evaluate.get("batch_size", 250)
    title = f"{recipe.name}  seed {seed}  guidance {sampling.get('guidance_scale')}"
    if text_to_image:
        from erase.evaluate.text import generate_for_prompts

        images, index = generate_for_prompts(bundle.pipeline, chosen, per_class, seed, sampling, batch_size)
        save_image_atomic(labelled_grid(prompt_rows(images, index, len(chosen)), chosen, title=title), path)
        return path
    images, labels = generate_for_classes(bundle.pipeline, {c: per_class for c in chosen}, seed, sampling,
                                          batch_size)
    rows = class_rows(images, labels, chosen, per_class)
    save_image_atomic(labelled_grid(rows, [recipe.class_names[c] for c in chosen], title=title), path)
    return path


def main(args, command_line: str) -> int:
    path = sample_grid(args.model, args.classes, args.per_class, args.out, args.seed, args.guidance_scale,
                       args.inference_steps, args.weights, args.init, prompts=args.prompts,
                       prompts_file=args.prompts_file)
    print(f"wrote {path}")
    return 0
