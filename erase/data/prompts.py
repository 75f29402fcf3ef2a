"""Prompts of a concept to erase: forget prompts (with their relabel anchors), retain and evaluation prompts.

Sources, in order: the shapes world for t2i-shapes (a shape, colour or texture); prompts/<concept>/ when it
exists (e.g. prompts/nudity/); otherwise the templates in prompts/templates/ with the concept filled in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
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

    def __post_init__(self) -> None:
        self.esd_prompt = self.esd_prompt or self.concept

    def as_dict(self) -> dict:
        return {"source": self.source, "forget": len(self.forget), "retain": len(self.retain),
                "eval_forget": len(self.eval_forget), "eval_retain": len(self.eval_retain),
                "anchor_example": self.anchors[0] if self.anchors else None, "esd_prompt": self.esd_prompt}


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


def _anchors(path: Path, forget: list[str]) -> list[str]:
    lines = [" ".join(line.split()) for line in path.read_text().splitlines()] if path.is_file() else []
    lines = [line for line in lines if line] if len(lines) != len(forget) else lines
    if len(lines) == 1:
        return lines * len(forget)
    if len(lines) != len(forget):
        raise UserError(f"{path} has {len(lines)} anchor prompts for {len(forget)} forget prompts: give one "
                        f"line, or one line per forget prompt")
    return lines


def from_folder(concept: str, folder: Path) -> ConceptPrompts:
    forget = read_lines(folder / "forget.txt")
    if not forget:
        raise UserError(f"concept {concept!r} has no forget prompts: add lines to {folder / 'forget.txt'}")
    retain = read_lines(folder / "retain.txt")
    anchors = _anchors(folder / "anchor.txt", forget) if (folder / "anchor.txt").is_file() else [""] * len(forget)
    return ConceptPrompts(concept, forget, anchors, retain,
                          read_lines(folder / "eval_forget.txt") or forget,
                          read_lines(folder / "eval_retain.txt") or retain, str(folder))


def from_templates(concept: str, folder: Path) -> ConceptPrompts:
    templates = read_lines(folder / "forget.txt")
    if not templates or not all("{concept}" in t for t in templates):
        raise UserError(f"{folder / 'forget.txt'} must hold prompt templates with {{concept}} in every line")
    forget = [t.replace("{concept}", concept) for t in templates]
    anchors = _anchors(folder / "anchor.txt", forget) if (folder / "anchor.txt").is_file() else [""] * len(forget)
    retain = read_lines(folder / "retain.txt")
    return ConceptPrompts(concept, forget, anchors, retain, forget, retain, f"{folder} (templates)")


def from_shapes(concept: str) -> ConceptPrompts:
    from erase.data.shapes import concept_caption, concept_captions, evaluation_captions

    forget, anchors, retain = concept_captions(concept)
    asks, others = evaluation_captions(concept)
    return ConceptPrompts(concept.lower(), forget, anchors, retain, asks, others, "shapes world",
                          esd_prompt=concept_caption(concept))


def concept_prompts(recipe: Recipe, concept: str | None) -> ConceptPrompts:
    concept = check_concept(concept)
    if recipe.world == "shapes":
        return from_shapes(concept)
    folder = PROMPTS_DIR / concept_slug(concept)
    if concept_slug(concept) and folder.is_dir():
        return from_folder(concept, folder)
    return from_templates(concept, PROMPTS_DIR / "templates")
