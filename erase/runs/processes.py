"""One run, several processes (`accelerate launch --num_processes N`): every process trains, only the main
process evaluates and writes. A single process is the degenerate case of the same code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from erase.errors import UserError

T = TypeVar("T")


def process_state() -> PartialState:
    """Initialises the process group (gloo without CUDA, like the trainer's Accelerator) on first use."""
    return PartialState(cpu=not torch.cuda.is_available())


def from_main(make: Callable[[], T]) -> T:
    """Run `make` on the main process only and hand its result to every process.

    A UserError on the main process is raised on every process, so a refused run stops everywhere
    instead of leaving the others waiting at the first collective.
    """
    state = process_state()
    if state.num_processes == 1:
        return make()
    payload: list = [None]
    if state.is_main_process:
        try:
            payload[0] = ("ok", make())
        except UserError as error:
            payload[0] = ("error", str(error))
    broadcast_object_list(payload, from_process=0)
    kind, value = payload[0]
    if kind == "error":
        raise UserError(value)
    return value


def is_main() -> bool:
    return process_state().is_main_process


def wait_for_everyone() -> None:
    process_state().wait_for_everyone()


def shared_folder(make: Callable[[], Path]) -> Path:
    """A run folder created once by the main process; every process gets its path."""
    return Path(from_main(lambda: str(make())))
