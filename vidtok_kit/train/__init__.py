"""Training: data, the torchtitan-shaped loop, checkpoints, distributed plumbing and the CLI.

``run(recipe, run_dir)`` is what ``vidtok-kit train`` calls; under ``torchrun`` every process
calls it and :mod:`~vidtok_kit.train.distributed` sorts out who does what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidtok_kit.train.loop import Trainer, TrainingError

__all__ = ["Trainer", "TrainingError", "run"]


def run(recipe: Any, run_dir: str | Path, *, registry: Any = None, resume: bool = False, progress: bool = True) -> Trainer:
    """Train ``recipe`` into ``run_dir`` (resuming from its newest checkpoint if ``resume``).

    :return: the finished :class:`Trainer` (``.last_checkpoint``, ``.last_eval``, ``.model``).
    """
    from vidtok_kit.train.distributed import shutdown

    try:
        trainer = Trainer(recipe, run_dir, registry=registry, resume=resume, progress=progress)
        trainer.train()
        return trainer
    finally:
        shutdown()
