"""`erase classify`: make an image classifier forget a class or a set of training samples, end to end.

Same guarantees as `erase class`: every input (model, weights, data, forget set, method and what it needs)
is validated before the run folder exists, and EVAL.json is written last. The metrics follow SalUn's
classification protocol and are reported for the original, the unlearned and the retrained model (trained
from scratch on the retain data, cached per forget set; erase/runs/reference.py), with each metric's gap to
the retrained model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erase.config import Recipe, RunConfig, load_recipe
from erase.data.forget import ForgetSpec, check_spec, spec_from_options
from erase.data.worlds import world_names
from erase.errors import UserError
from erase.models import check_family_settings, check_weights
from erase.runs.console import print_classify_result
from erase.runs.folders import check_out_folder
from erase.runs.resolve import build_method, resolve_config, resumable_run, run_options, train_settings

if TYPE_CHECKING:  # light at import: every argument is checked before torch is imported
    from erase.data.datasets import LabelledImages
    from erase.models.classifier import ClassifierBundle


@dataclass
class ClassifyData:
    """The training split cut into forget and retain sets, and the test set that TA and MIA use."""

    forget: LabelledImages
    retain: LabelledImages
    test: LabelledImages
    test_all: LabelledImages
    class_names: list[str]
    target: dict[str, Any]
    digest: str


def resolve_classify_config(command: str, model: str, method: str, spec: ForgetSpec, data: str | None = None,
                            **options) -> tuple[RunConfig, Recipe]:
    config, recipe = resolve_config(command, model, method, spec.as_target(), seed=spec.seed,
                                    extra={"data": data}, **options)
    check_classifier(recipe, config.model)
    return config, recipe


def check_classifier(recipe: Recipe, model: str) -> None:
    if recipe.family != "classifier":
        raise UserError(f"{recipe.name} is a {recipe.family} generator, not a classifier: use "
                        f"`python -m erase class --model {model}`")


def check_classify_run(config: RunConfig, recipe: Recipe) -> None:
    """What needs no model or data, before the heavy imports: the family, the forget set, the weights files,
    the data folder and the training settings the family cannot honour."""
    check_classifier(recipe, config.model)
    data = config.extra.get("data")
    spec = ForgetSpec.from_target(config.target, config.seed)
    check_spec(spec, None if data else recipe.class_index)  # a user's data folder names its own classes
    folder = Path(data).expanduser() if data else recipe.data_dir
    if (data or recipe.world not in world_names()) and (folder is None or not folder.is_dir()):
        where = f"no data at {folder}" if folder else "no data folder configured"
        hint = recipe.data_hint or "pass --data DIR (CIFAR-10 python batches or an ImageFolder)"
        raise UserError(f"{recipe.name}: {where}; {hint}")
    check_weights(recipe, config.weights, config.init)
    check_family_settings(recipe, config.training)


def load_data(recipe: Recipe, config: RunConfig) -> ClassifyData:
    import torch

    from erase.data.datasets import split_by_mask
    from erase.data.forget import describe, forget_mask
    from erase.data.images import load_classification_data
    from erase.runs.reference import data_digest

    train, test = load_classification_data(recipe, config.extra.get("data"))
    if config.extra.get("data"):  # a user's folder names its own classes
        recipe = dataclasses.replace(recipe, class_names=train.class_names, num_classes=len(train.class_names))
    names = recipe.class_names or train.class_names
    class_index = recipe.class_index
    spec = ForgetSpec.from_target(config.target, config.seed)
    mask = forget_mask(spec, train.labels, class_index)
    forget, retain = split_by_mask(train, mask)
    test_all = test
    if spec.kind == "class":  # SalUn's class-wise protocol: TA and the MIA shadow set leave the class out
        test = test.subset(~torch.isin(test.labels, forget.labels.unique()))
    target = describe(spec, mask, names, class_index)
    return ClassifyData(forget, retain, test, test_all, names, target, data_digest(train, test))


def load_classifier(recipe: Recipe, weights: str | None, init: str) -> ClassifierBundle:
    from erase.models.classifier import load

    return load(recipe, check_weights(recipe, weights, init))


def scored(model, data: ClassifyData, config: RunConfig, use_cache: bool) -> dict[str, Any]:
    """UA/RA/TA/MIA (+ per-class test accuracy); the original and retrained weights are scored once."""
    from erase.evaluate.cache import cached
    from erase.evaluate.classification import evaluate_classifier

    batch_size = config.evaluate.get("batch_size", 512)

    def compute() -> dict[str, Any]:
        return evaluate_classifier(model, data.forget, data.retain, data.test, data.class_names, batch_size,
                                   test_all=data.test_all)

    if not use_cache:
        return compute()
    key = {"data": data.digest, "forget": data.target, "protocol": "salun-svc-mia-v4",  # v4: spread shadow members
           "forget_ids": hashlib.sha256(data.forget.ids.numpy().tobytes()).hexdigest()}
    return cached("classify-eval", [model], key, compute)


def with_gaps(metrics: dict[str, Any], retrained: dict[str, Any]) -> dict[str, Any]:
    from erase.evaluate.classification import gap_to_retrain

    return {**metrics, "gap_to_retrain": gap_to_retrain(metrics, retrained)}


def run_classify(config: RunConfig, recipe: Recipe, command_line: str, overwrite: bool = False,
                 run_folder: Path | None = None) -> Path:
    """Validate -> run folder -> score original -> retrained reference -> unlearn -> score -> EVAL.json."""
    started = time.perf_counter()
    check_classify_run(config, recipe)
    if run_folder is None:
        check_out_folder(config.out, overwrite)
    import torch

    from erase.auto_steps import auto_stop, own_data_size
    from erase.evaluate.classification import gap_to_retrain
    from erase.runs.lifecycle import add_auto_report, finish_run, new_run_folder, report_head, save_model
    from erase.runs.processes import is_main, shared_folder, wait_for_everyone
    from erase.runs.reference import retrained_reference
    from erase.tasks.checks import CHECK_SLICE, CLASSIFIER_CHECKS, classifier_check
    from erase.tasks.classification import classification_task
    from erase.train import check_settings, unlearn

    method = build_method(config)
    data = load_data(recipe, config)
    torch.manual_seed(config.seed)
    bundle = load_classifier(recipe, config.weights, config.init)
    task = classification_task(recipe)
    task.check_objective(method.objective)
    check_settings(bundle.model, config.training)
    method.validate(bundle.model, data.forget, data.retain)

    if run_folder is None:
        run_folder = shared_folder(lambda: new_run_folder(config, recipe, data.target["name"], overwrite))
    main = is_main()  # under `accelerate launch` every process trains; only the main one evaluates and writes
    if main:
        print(f"run folder: {run_folder}", file=sys.stderr)

    eval_started = time.perf_counter()
    original = scored(bundle.model, data, config, use_cache=True) if main else None
    evaluate_seconds = time.perf_counter() - eval_started

    retrain_started = time.perf_counter()
    retrained_model, retrain_record = retrained_reference(bundle.model, task, data.forget, data.retain, recipe,
                                                          config.model, config.seed, run_folder / "retrain-reference")
    retrain_seconds = time.perf_counter() - retrain_started
    eval_started = time.perf_counter()
    if main:
        retrained = {**scored(retrained_model, data, config, use_cache=True),
                     "run_time_seconds": retrain_record["seconds"]}
    evaluate_seconds += time.perf_counter() - eval_started

    auto = auto_stop(config, classifier_check(data.forget, data.test, config.seed), data.target["kind"],
                     own_data_size(recipe, config, len(data.forget) + len(data.retain)), CLASSIFIER_CHECKS,
                     f"forget-set UA and held-out test accuracy (slices of up to {CHECK_SLICE})")
    result = unlearn(bundle.model, task, method, data.forget, data.retain, train_settings(config, auto),
                     checkpoint_dir=run_folder / "checkpoints", history_path=run_folder / "history.jsonl",
                     auto=auto)
    if not main:
        wait_for_everyone()
        return run_folder
    save_model(bundle, run_folder / "model")
    eval_started = time.perf_counter()
    unlearned = {**scored(bundle.model, data, config, use_cache=False),
                 "run_time_seconds": round(result.prepare_seconds + result.train_seconds, 2)}
    evaluate_seconds += time.perf_counter() - eval_started

    report = {
        **report_head(config, method, command_line, data.target),
        "data": config.extra.get("data") or recipe.world or str(recipe.data_dir),
        "seconds": {"prepare": round(result.prepare_seconds, 2), "unlearn": round(result.train_seconds, 2),
                    "retrain": round(retrain_seconds, 2), "evaluate": round(evaluate_seconds, 2),
                    "total": round(time.perf_counter() - started, 2)},
        "metrics": {"original": with_gaps(original, retrained), "unlearned": with_gaps(unlearned, retrained),
                    "retrained": retrained},
        "avg_gap": gap_to_retrain(unlearned, retrained)["avg_gap"],
        "retrain": retrain_record,
    }
    add_auto_report(report, result)
    finish_run(run_folder, config, report, processes=result.processes)
    wait_for_everyone()
    return run_folder


def resume_classify(run: str, command_line: str) -> Path:
    folder, config = resumable_run(run)
    return run_classify(config, load_recipe(config.model), command_line, run_folder=folder)


def main(args, command_line: str) -> int:
    if args.resume:
        folder = resume_classify(args.resume, command_line)
    else:
        spec = spec_from_options(args.forget_class, args.forget_random, args.forget_indices, args.seed)
        config, recipe = resolve_classify_config("classify", args.model, args.method, spec, data=args.data,
                                                 **run_options(args))
        folder = run_classify(config, recipe, command_line, overwrite=args.overwrite)
    from erase.runs.processes import is_main

    if is_main():
        print_classify_result(folder)
    return 0
