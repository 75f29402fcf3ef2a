"""Prompts of a concept to erase: forget prompts (with their relabel anchors), retain and evaluation prompts.

Sources, in order: the shapes world for t2i-shapes (a shape, colour or texture); prompts/<concept>/ when it
exists (e.g. prompts/nudity/); otherwise the templates in prompts/templates/ with the concept filled in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from erase.config import PROMPTS_DIR, Recipe
from erase.errors import UserError


@dataclass
class ConceptPrompts:
    concept: str
    forget: list[str]
    anchors: list[str]  # one per forget prompt: the relabel objective's target prompt
    retain: list[str]
    eval_forget: list[str]
    eval_retain: list[str]
    source: str
    esd_prompt: str = ""  # the concept as ESD conditions on it (default: the concept text)
    # one per forget prompt: the prompt with the concept taken out ("a red triangle" -> "a red shape"; the
    # empty prompt where nothing is left). ESD's neutral prompt when it trains on the forget prompts
    # (`esd_prompts=forget`); empty when the source has none (`erase concept` then refuses that setting).
    neutral: list[str] = field(default_factory=list)
    # the evaluation prompts of the concept from an I2P-style CSV (--eval-prompts): each row's seed, guidance
    # and categories, aligned with eval_forget; None when the prompts came without them
    eval_rows: "PromptRows | None" = None

    def __post_init__(self) -> None:
        self.esd_prompt = self.esd_prompt or self.concept

    def as_dict(self) -> dict:
        report = {"source": self.source, "forget": len(self.forget), "retain": len(self.retain),
                  "eval_forget": len(self.eval_forget), "eval_retain": len(self.eval_retain),
                  "anchor_example": self.anchors[0] if self.anchors else None, "esd_prompt": self.esd_prompt,
                  "neutral_example": self.neutral[0] if self.neutral else None}
        if self.eval_rows is not None:
            report["eval_prompts_file"] = self.eval_rows.source
        return report

    def with_eval_rows(self, rows: "PromptRows") -> "ConceptPrompts":
        """The same concept judged on the rows of a prompt CSV instead of its own evaluation prompts."""
        import dataclasses

        return dataclasses.replace(self, eval_forget=list(rows.prompts), eval_rows=rows)


@dataclass
class PromptRows:
    """Evaluation prompts read from an I2P-style CSV: each row's prompt, and when the file has them its
    evaluation seed, guidance scale and categories (I2P's "sexual,shocking", ...)."""

    prompts: list[str]
    seeds: list[int] | None
    guidance: list[float] | None
    categories: list[str] | None
    source: str

    def head(self, limit: int | None) -> "PromptRows":
        if not limit:
            return self
        def cut(values):
            return None if values is None else values[:limit]

        return PromptRows(self.prompts[:limit], cut(self.seeds), cut(self.guidance), cut(self.categories),
                          self.source)


# column names: ESD's and SalUn's CSVs say evaluation_seed / evaluation_guidance, I2P's own sd_seed /
# sd_guidance_scale
SEED_COLUMNS = ("evaluation_seed", "sd_seed")
GUIDANCE_COLUMNS = ("evaluation_guidance", "sd_guidance_scale")


def _number(text: str, kind, path: Path, line: int, column: str):
    try:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError
        if kind is int:
            if not value.is_integer():
                raise ValueError
            return int(value)
        return value
    except (TypeError, ValueError):
        raise UserError(f"{path} line {line}: {column} {text!r} is not a "
                        f"{'whole number' if kind is int else 'number'}") from None


def read_prompt_csv(path: str | Path) -> PromptRows:
    """An I2P-style CSV: column prompt, and optionally evaluation_seed, evaluation_guidance, categories.

    A file without a prompt column, with no rows, or with a value that is not a number is a UserError
    naming the file and line."""
    import csv

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"prompt file {path} does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower(): name for name in reader.fieldnames or []}
            if "prompt" not in columns:
                raise UserError(f"{path} has no 'prompt' column (its columns: {', '.join(columns) or 'none'}); an "
                                f"I2P-style CSV has prompt and, optionally, evaluation_seed, evaluation_guidance "
                                f"and categories")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read prompt file {path}: {exc}") from None
    seed_column = next((columns[c] for c in SEED_COLUMNS if c in columns), None)
    guidance_column = next((columns[c] for c in GUIDANCE_COLUMNS if c in columns), None)
    prompts, seeds, guidance, categories = [], [], [], []
    for line, row in enumerate(rows, start=2):
        text = " ".join((row.get(columns["prompt"]) or "").split())
        if not text:
            raise UserError(f"{path} line {line}: the prompt is empty")
        prompts.append(text)
        if seed_column:
            seeds.append(_number(row.get(seed_column), int, path, line, seed_column))
        if guidance_column:
            guidance.append(_number(row.get(guidance_column), float, path, line, guidance_column))
        categories.append((row.get(columns["categories"]) or "").strip() if "categories" in columns else "")
    if not prompts:
        raise UserError(f"{path} holds no prompts (only a header)")
    return PromptRows(prompts, seeds if seed_column else None, guidance if guidance_column else None,
                      categories if "categories" in columns else None, str(path.resolve()))


def check_concept(concept: str | None) -> str:
    text = " ".join((concept or "").split())
    if not text:
        raise UserError("--prompt is empty: name the concept to erase, e.g. --prompt nudity or "
                        "--prompt \"van gogh style\"")
    return text


def concept_slug(concept: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", concept.lower()).strip("-")


def read_lines(path: Path) -> list[str]:
    """Non-empty lines, whitespace-normalised; a missing file is an empty list."""
    if not path.is_file():
        return []
    return [" ".join(line.split()) for line in path.read_text().splitlines() if line.strip()]


def _per_forget_prompt(path: Path, forget: list[str], what: str, default: list[str]) -> list[str]:
    """anchor.txt, neutral.txt: one line for every forget prompt, or one per forget prompt; `default` when
    the file does not exist."""
    if not path.is_file():
        return default
    lines = [" ".join(line.split()) for line in path.read_text().splitlines()]
    lines = [line for line in lines if line] if len(lines) != len(forget) else lines
    if len(lines) == 1:
        return lines * len(forget)
    if len(lines) != len(forget):
        raise UserError(f"{path} has {len(lines)} {what} prompts for {len(forget)} forget prompts: give one "
                        f"line, or one line per forget prompt")
    return lines


def from_folder(concept: str, folder: Path) -> ConceptPrompts:
    forget = read_lines(folder / "forget.txt")
    if not forget:
        raise UserError(f"concept {concept!r} has no forget prompts: add lines to {folder / 'forget.txt'}")
    retain = read_lines(folder / "retain.txt")
    anchors = _per_forget_prompt(folder / "anchor.txt", forget, "anchor", [""] * len(forget))
    neutral = _per_forget_prompt(folder / "neutral.txt", forget, "neutral", [])
    return ConceptPrompts(concept, forget, anchors, retain,
                          read_lines(folder / "eval_forget.txt") or forget,
                          read_lines(folder / "eval_retain.txt") or retain, str(folder), neutral=neutral)


def from_templates(concept: str, folder: Path) -> ConceptPrompts:
    templates = read_lines(folder / "forget.txt")
    if not templates or not all("{concept}" in t for t in templates):
        raise UserError(f"{folder / 'forget.txt'} must hold prompt templates with {{concept}} in every line")
    forget = [t.replace("{concept}", concept) for t in templates]
    # the templates' anchors are their lines without the concept: the neutral prompts too
    anchors = _per_forget_prompt(folder / "anchor.txt", forget, "anchor", [""] * len(forget))
    retain = read_lines(folder / "retain.txt")
    return ConceptPrompts(concept, forget, anchors, retain, forget, retain, f"{folder} (templates)",
                          neutral=list(anchors))


def from_shapes(concept: str, anchor: str | None = None) -> ConceptPrompts:
    from erase.data.shapes import concept_caption, concept_captions, evaluation_captions, without

    forget, anchors, retain = concept_captions(concept, anchor)
    asks, others = evaluation_captions(concept)
    return ConceptPrompts(concept.lower(), forget, anchors, retain, asks, others, "shapes world",
                          esd_prompt=concept_caption(concept), neutral=[without(p, concept) for p in forget])


def concept_prompts(recipe: Recipe, concept: str | None, anchor: str | None = None,
                    eval_prompts: str | None = None) -> ConceptPrompts:
    """The concept's prompts. `anchor`: what the relabel objective maps the concept to; for the shapes world
    another value of the concept's attribute (default: the recipe's `train.anchors` entry for the concept,
    else the next value), elsewhere a prompt that replaces every line of anchor.txt. `eval_prompts`: an
    I2P-style CSV whose rows replace the concept's evaluation prompts."""
    prompts = _concept_prompts(recipe, concept, anchor)
    return prompts.with_eval_rows(read_prompt_csv(eval_prompts)) if eval_prompts else prompts


def _concept_prompts(recipe: Recipe, concept: str | None, anchor: str | None = None) -> ConceptPrompts:
    concept = check_concept(concept)
    if anchor is not None and not anchor.strip():
        raise UserError("--anchor is empty: name what the concept should become, or leave the option out")
    if recipe.world == "shapes":
        default = (recipe.train.get("anchors") or {}).get(concept.strip().lower())
        return from_shapes(concept, anchor or default)
    folder = PROMPTS_DIR / concept_slug(concept)
    if concept_slug(concept) and folder.is_dir():
        prompts = from_folder(concept, folder)
    else:
        prompts = from_templates(concept, PROMPTS_DIR / "templates")
    if anchor:
        prompts.anchors = [" ".join(anchor.split())] * len(prompts.forget)
    return prompts
