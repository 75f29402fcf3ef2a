"""The exceptions the CLI turns into one line: bad user input (exit code 2) and an interrupted run (143).

Kept free of heavy imports, so the CLI can catch them without loading torch."""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Something the user can fix. The message says what is wrong and what to do."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written at `step` (None: the run had no checkpoint yet)."""

    def __init__(self, step: int, checkpoint: Path | None):
        super().__init__(f"interrupted at step {step}")
        self.step, self.checkpoint = step, checkpoint
