"""Amnesiac unlearning (Graves et al. 2021) and its partial, layer-wise pruned variant (arXiv 2403.07611).

Unlearning subtracts, from the trained weights, the logged update of every training batch that contained a
forget sample (logs come from `erase pretrain MODEL --log-updates`, see erase/update_log.py). The steps
that follow are optional fine-tuning on the retain data: Graves et al. fine-tune briefly after the
subtraction; Gogineni & Nadimi report that with pruned logs no fine-tuning is needed (--steps 0).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from erase.errors import UserError
from erase.methods.ft import FineTune
from erase.methods.registry import register
from erase.settings import Float, Text

if TYPE_CHECKING:
    import torch

    from erase.update_log import UpdateLog

KEEP = Float("keep", 1.0, "the log's kept fraction of each update (pretrain --log-keep)", gt=0, le=1)


def dataset_ids(dataset) -> torch.Tensor:
    """The stable sample ids of a dataset (LabelledImages keeps them; others are read item by item)."""
    import torch

    ids = getattr(dataset, "ids", None)
    if ids is None:
        ids = torch.stack([torch.as_tensor(dataset[i]["index"]) for i in range(len(dataset))])
    return torch.as_tensor(ids).long()


@register("amnesiac")
class Amnesiac(FineTune):
    summary = "subtract the logged updates of the batches that held forget data; steps fine-tune on retain"
    needs_steps = False
    needs_training_data = True
    settings = (KEEP, Text("log", None, "update-log folder (none: the one recorded for these weights)",
                           optional=True))

    def __init__(self, objective=None, params=None, **hyper: Any):
        super().__init__(objective=objective, params=params, **hyper)
        self._report: dict[str, Any] = {}

    def find_log(self, model) -> UpdateLog:
        from erase.update_log import UpdateLog

        return UpdateLog.find(model, self.hyper["keep"], self.hyper["log"])

    def validate(self, model, forget_set, retain_set) -> None:
        super().validate(model, forget_set, retain_set)
        forget_ids = dataset_ids(forget_set)
        missing = self.find_log(model).missing(forget_ids)
        if len(missing):
            raise UserError(
                f"{len(missing)} of the {len(forget_ids)} forget samples (e.g. id {int(missing[0])}) were not "
                f"logged during training; record a log that covers them with `python -m erase pretrain MODEL "
                f"--log-updates` and --log-classes / --log-random / --log-indices")

    def prepare(self, model, task, data, accelerator, total_steps: int) -> None:
        self._report = self.find_log(model).subtract(model, dataset_ids(data.forget_set))
        super().prepare(model, task, data, accelerator, total_steps)

    def run_report(self) -> dict[str, Any]:
        return {**super().run_report(), **self._report}


@register("partial-amnesiac")
class PartialAmnesiac(Amnesiac):
    summary = "amnesiac with layer-wise pruned logs: each update keeps its top `keep` fraction per tensor"
    settings = (KEEP.with_default(0.1),)
