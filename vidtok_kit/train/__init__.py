"""Training: data, the torchtitan-shaped loop, checkpoints, distributed plumbing and the CLI.

``run(recipe, run_dir)`` is what ``vidtok-kit train`` calls; under ``torchrun`` every process
calls it and :mod:`~vidtok_kit.train.distributed` sorts out who does what.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidtok_kit._lazy import lazy_exports

if TYPE_CHECKING:
    from vidtok_kit.train.loop import Trainer

__getattr__ = lazy_exports(__name__, dict.fromkeys(["Trainer", "TrainingError"], "loop"))

__all__ = ["Trainer", "TrainingError", "run"]


def run(recipe: Any, run_dir: str | Path, *, registry: Any = None, resume: bool = False, progress: bool = True) -> Trainer:
    """Train ``recipe`` into ``run_dir`` (resuming from its newest checkpoint if ``resume``).

    :return: the finished :class:`Trainer` (``.last_checkpoint``, ``.last_eval``, ``.model``).
    """
    from vidtok_kit.io.outputs import removed_on_failure
    from vidtok_kit.train.distributed import DistInfo, shutdown
    from vidtok_kit.train.loop import Trainer

    # a run that fails before its first checkpoint (bad data, bad recipe, Ctrl-C) leaves no run
    # directory behind, unless the directory was there before; rank 0 alone owns the directory
    cleanup = removed_on_failure(run_dir, keep=_holds_checkpoint) if DistInfo.from_env().is_main else contextlib.nullcontext()
    try:
        with cleanup:
            trainer = Trainer(recipe, run_dir, registry=registry, resume=resume, progress=progress)
            trainer.train()
        return trainer
    finally:
        shutdown()


def _holds_checkpoint(run_dir: Path) -> bool:
    from vidtok_kit.train.checkpointing import Checkpointer

    return bool(Checkpointer(run_dir).complete())
