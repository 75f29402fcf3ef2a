"""What an attack works on: a finished run's original model, its unlearned model and the retrained reference,
the run's forget and retain data, and the judge that says whether a sample shows the forgotten class.

The reference is the `retrain` method's model (erase/runs/reference.py), cached per model and forget set, so
it is trained once and shared by every run and attack on that forget set.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from erase.attacks import MODELS
from erase.config import Recipe, RunConfig
from erase.data.class_sets import training_data
from erase.errors import UserError
from erase.evaluate.cache import cached
from erase.evaluate.generator import Judges, make_judges
from erase.evaluate.probe import class_metrics, generate_for_classes, predict
from erase.models import GeneratorBundle, load_generator
from erase.runs.unlearned import unlearned_model
from erase.runs.reference import data_digest, retrained_reference
from erase.tasks.denoising import DenoisingTask, denoising_task

ATTACK_SEED_OFFSET = 2000  # seeds of the images the embedding attack fits (evaluation: seed, training data: +1000)


class AttackSubjects:
    """What every run's subjects have: the models by name, the run's config and recipe, the seed, and the
    per-model cache of attack results. Subclasses (class runs here, concept runs in erase/attacks/concepts.py)
    say how samples are judged and how the conditioning is attacked."""

    config: RunConfig
    recipe: Recipe
    models: dict[str, GeneratorBundle]
    model_names: tuple[str, ...] = MODELS

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def batch_size(self) -> int:
        return self.config.evaluate.get("batch_size", 250)

    def sampling(self, **changes) -> dict[str, Any]:
        """The recipe's sampling settings with `changes` (e.g. guidance_scale)."""
        return {**self.recipe.sampling, **changes}

    def forget_images(self, k: int):
        """k of the run's forget images (with their labels or prompts), drawn with the seed; None without any."""
        if len(self.forget_set) == 0:
            return None
        order = torch.randperm(len(self.forget_set), generator=torch.Generator().manual_seed(self.seed + 17))
        return self.forget_set.subset(order[:min(k, len(self.forget_set))])

    def copy_model(self, which: str) -> GeneratorBundle:
        """An independent copy of one model that an attack may change (fine-tune, replace an embedding)."""
        return copy.deepcopy(self.models[which])

    def judged_modules(self, which: str) -> list[torch.nn.Module]:
        """The weights a result depends on: the model's and the judge's."""
        raise NotImplementedError

    def cache_key(self) -> dict[str, Any]:
        """What else a result depends on: the target, the sampling settings, the data."""
        raise NotImplementedError

    def cached(self, attack: str, which: str, settings: dict[str, Any], compute: Callable[[], Any]):
        """An attack's result on one model, computed once per (its weights, the judge, the attack's settings,
        the seed, the target and the data); the original and the reference are shared across runs."""
        key = {"attack": attack, "settings": settings, "seed": self.seed, **self.cache_key()}
        return cached(f"attack-{attack}", self.judged_modules(which), key, compute)


@dataclass
class Subjects(AttackSubjects):
    """A class run's three models, its data and its judge (the probe)."""

    folder: Path
    config: RunConfig
    recipe: Recipe
    forget: list[int]
    models: dict[str, GeneratorBundle]
    task: DenoisingTask
    forget_set: Any
    retain_set: Any
    judges: Judges
    reference_record: dict[str, Any]

    def judge(self, bundle: GeneratorBundle, counts: dict[int, int], sampling: dict[str, Any], desc: str
              ) -> dict[str, Any]:
        """Sample `counts[c]` images of each class c; the share the probe calls the forgotten classes among the
        forgotten classes' samples (`success`, = 1 - UA) and the mean probe accuracy over the other classes."""
        images, labels = generate_for_classes(bundle.pipeline, counts, self.seed, sampling, self.batch_size,
                                              desc=desc)
        metrics = class_metrics(predict(self.judges.probe, images), labels, self.forget, self.recipe.class_names)
        hits, n = metrics["forget_hits"], metrics["forget_samples"]
        result: dict[str, Any] = {"success": hits / max(1, n), "unlearning_accuracy": metrics["unlearning_accuracy"],
                                  "n": n}
        if metrics["retained_samples"]:
            result["retained_accuracy"] = metrics["retained_accuracy"]
        return result

    def forget_success(self, bundle: GeneratorBundle, n: int, desc: str, **sampling) -> dict[str, Any]:
        """`n` samples of the forgotten classes (split among them) judged at the recipe's sampling settings."""
        return self.judge(bundle, self.forget_counts(n), self.sampling(**sampling), desc)

    def forget_counts(self, n: int) -> dict[int, int]:
        share, extra = divmod(n, len(self.forget))
        return {c: share + (i < extra) for i, c in enumerate(self.forget)}

    def judge_at_scale(self, which: str, scale: float, values: dict[str, Any]) -> dict[str, Any]:
        """Guidance sweep: the forgotten and the retained classes sampled at one guidance scale."""
        counts = self.forget_counts(values["guidance_forget_samples"])
        if values["guidance_retain_samples"]:
            counts.update({c: values["guidance_retain_samples"] for c in range(self.recipe.num_classes)
                           if c not in self.forget})
        return self.judge(self.models[which], counts, self.sampling(guidance_scale=scale),
                          f"guidance {scale:g}: {which}")

    def attack_images(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, class ids): `count` samples of the forgotten classes drawn by the original model, with seeds
        of their own (never the judged samples' seeds)."""
        def compute():
            images, labels = generate_for_classes(self.models["original"].pipeline, self.forget_counts(count),
                                                  self.seed + ATTACK_SEED_OFFSET, self.recipe.sampling,
                                                  self.batch_size, desc="attack images from the original")
            return {"images": images, "labels": labels}

        result = cached("attack-images", [self.models["original"].denoiser],
                        {"count": count, "seed": self.seed, "forget": self.forget,
                         "sampling": self.recipe.sampling}, compute)
        return result["images"], result["labels"]

    def free_condition(self, bundle: GeneratorBundle, values: dict[str, Any]) -> "FreeClassCondition":
        return FreeClassCondition(self, bundle)

    def check_attacks(self, names: list[str]) -> None:
        """Refuse, before any attack runs, one this model cannot take."""
        if "embedding" in names:
            class_table(self.models["original"].denoiser, f"the embedding attack on {self.recipe.name} "
                        f"(--attacks guidance,relearn runs the others)")

    def judged_modules(self, which: str) -> list[torch.nn.Module]:
        return [self.models[which].denoiser, self.judges.probe]

    def cache_key(self) -> dict[str, Any]:
        return {"forget": self.forget, "sampling": self.recipe.sampling, "data": self.data_digest}

    @property
    def data_digest(self) -> str:
        if not hasattr(self, "_digest"):
            self._digest = data_digest(self.forget_set, self.retain_set)
        return self._digest


def load_class_subjects(folder: Path, config: RunConfig, recipe: Recipe, forget: list[int]) -> Subjects:
    """Load the original (seeded as the run was, for --init random), the unlearned model, the run's data and
    the probe; train or load the cached retrained reference."""
    from erase.data.generated import generated_split

    judges = make_judges(recipe, config)
    if judges.probe is None:
        raise UserError(f"{recipe.name} has no probe to judge samples ({judges.reason}); attacks need one")
    torch.manual_seed(config.seed)
    original = load_generator(recipe, config.weights, config.init)
    unlearned = unlearned_model(folder, config, recipe)  # model/, or an eval run's judged model
    sets, _ = training_data(recipe, config, forget)
    if sets is None:  # the run trained on samples of the original, cached in its folder
        sets = generated_split(original, forget, config.seed, recipe.extra.get("generated_data", {}), folder)
    forget_set, retain_set = sets
    task = denoising_task(original)
    reference = reference_bundle(original, task, forget_set, retain_set, recipe, config)
    return Subjects(folder, config, recipe, forget, {"original": original, "unlearned": unlearned,
                                                      "reference": reference[0]},
                    task, forget_set, retain_set, judges, reference[1])


def reference_bundle(original: GeneratorBundle, task, forget_set, retain_set, recipe: Recipe, config: RunConfig
                     ) -> tuple[GeneratorBundle, dict[str, Any]]:
    """The original's pipeline around the retrained reference's weights (trained now unless cached)."""
    print(f"retrained reference of {recipe.name} without {config.target} (cached after the first time)",
          file=sys.stderr)
    retrained, record = retrained_reference(original.denoiser, task, forget_set, retain_set, recipe, config.model,
                                            config.seed)
    return with_denoiser(original, retrained), {k: record.get(k) for k in ("steps", "seed", "seconds", "cached",
                                                                            "cache")}


def with_denoiser(original: GeneratorBundle, weights: torch.nn.Module) -> GeneratorBundle:
    """A copy of the original's pipeline around other weights of its denoiser (a retrained reference's)."""
    bundle = copy.deepcopy(original)
    bundle.denoiser.load_state_dict(weights.state_dict())
    bundle.denoiser.eval()
    return bundle


class FreeClassEmbedding(torch.nn.Module):
    """A class-embedding table whose forgotten rows answer with free parameters (one row per forgotten class)."""

    def __init__(self, table: torch.nn.Embedding, rows: list[int], free: torch.nn.Parameter):
        super().__init__()
        self.table = table
        self.rows = rows
        self.free = free

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        out = self.table(labels)
        for i, row in enumerate(self.rows):
            out = torch.where((labels == row).unsqueeze(-1), self.free[i].to(out.dtype), out)
        return out


def class_table(denoiser, who: str) -> torch.nn.Embedding:
    """The denoiser's class-embedding table; a model without one (DiT, the seed repos' UNet) is refused."""
    table = getattr(denoiser, "class_embedding", None)
    if not isinstance(table, torch.nn.Embedding):
        raise UserError(f"{who} needs a class-embedding table (a diffusers UNet's class_embedding), and this "
                        f"{type(denoiser).__name__} has none")
    return table


def free_rows(denoiser, count: int) -> torch.nn.Parameter:
    """`count` free embeddings, each started from the null class's row (the unconditional embedding)."""
    from erase.models.pipeline import null_class_of

    start = class_table(denoiser, "the embedding attack").weight[null_class_of(denoiser)].detach()
    return torch.nn.Parameter(start.clone().expand(count, -1).contiguous())


class FreeClassCondition:
    """The embedding attack on a class-conditional UNet: its forgotten classes' embeddings replaced by free ones."""

    def __init__(self, subjects: Subjects, bundle: GeneratorBundle):
        denoiser = bundle.denoiser
        table = class_table(denoiser, "the embedding attack")
        denoiser.requires_grad_(False)
        denoiser.eval()
        self.embedding = FreeClassEmbedding(table, list(subjects.forget), free_rows(denoiser, len(subjects.forget)))
        denoiser.class_embedding = self.embedding
        self.subjects, self.bundle = subjects, bundle

    def parameters(self):
        return [self.embedding.free]

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.subjects.task.adapter.predict(self.bundle.denoiser, x_t, t, labels)

    def success(self, n: int, desc: str) -> dict[str, Any]:
        return self.subjects.forget_success(self.bundle, n, desc)
