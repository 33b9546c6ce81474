"""Training and scoring one ablation run with the project's trainer (:mod:`vidtok_kit.train`).

Each run trains through :func:`vidtok_kit.train.run` in ``runs/<name>/train`` (the same loop,
losses, data pipeline and checkpoints as ``vidtok-kit train``), with ``train.steps`` set to the
suite's ``--steps``; a stage-2 run gets ``train.init_from`` = its stage-1 run directory. A run
interrupted mid-training resumes from its newest checkpoint the next time the suite runs.

Scoring uses the trainer's held-out data: for ``builtin:samples`` the video ``bikes.mp4`` is never
trained on (:data:`vidtok_kit.train.data.BUILTIN_HOLDOUT`), and the held-out clip is its first
clip at the validation sample rate (:func:`vidtok_kit.train.heldout.heldout_clips`), scored with the
evaluation protocol of ``vidtok-kit eval``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import attrs

__all__ = ["evaluate_heldout", "train_run"]


def train_run(
    recipe: Any,
    *,
    steps: int,
    run_dir: str | Path,
    init_from: str | Path | None = None,
    device: str | None = None,
    fresh: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``recipe`` for ``steps`` steps into ``run_dir`` (resuming a partial run there).

    :param init_from: a stage-1 run directory (or weights) to start from; overrides the recipe's.
    :param device: ``train.device`` to use ("auto", "cpu", "cuda"); None keeps the recipe's.
    :param fresh: delete whatever ``run_dir`` holds first instead of resuming it.
    :return: ``{"run_dir", "checkpoint" (model .safetensors), "losses", "steps", "last_eval"}``.
    """
    from vidtok_kit.train import run as train

    run_dir = Path(run_dir)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    changes: dict[str, Any] = {"steps": steps}
    if init_from:
        changes["init_from"] = str(init_from)
    if device:
        changes["device"] = device
    recipe = attrs.evolve(recipe, train=attrs.evolve(recipe.train, **changes))
    trainer = train(recipe, run_dir, resume=True, progress=progress)
    if trainer.last_checkpoint is None:
        raise RuntimeError(f"{run_dir}: the trainer finished without a checkpoint")
    records = trainer.metrics.records if trainer.metrics is not None else []
    losses = [float(r["loss/total"]) for r in records if "loss/total" in r]
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(Path(trainer.last_checkpoint) / "model.safetensors"),
        "losses": losses,
        "steps": trainer.step,
        "last_eval": dict(trainer.last_eval),
    }


def evaluate_heldout(recipe: Any, checkpoint: str | Path, *, size: int, device: str = "cpu") -> dict[str, Any]:
    """PSNR / SSIM (and LPIPS, FVD, codebook figures when available) on the recipe's held-out clip.

    :param size: square evaluation resolution (the paper evaluates at 256 whatever the training size).
    """
    from vidtok_kit.evaluation.evaluator import EvalOptions, Evaluator
    from vidtok_kit.evaluation.inputs import Clip
    from vidtok_kit.evaluation.run import load_fvd_extractor, load_perceptual
    from vidtok_kit.loading import load
    from vidtok_kit.train.heldout import heldout_clips

    model = load(recipe, checkpoint, device=device)
    frames = recipe.train.num_frames
    # the trainer's held-out clip, resampled at the evaluation size (the paper scores at 256)
    at_size = attrs.evolve(recipe, train=attrs.evolve(recipe.train, resolution=size))
    path, clips = heldout_clips(at_size, multiple=model.spatial_factor)
    video = clips[0]
    lpips, lpips_note = load_perceptual(recipe.train.loss)
    fvd, fvd_note = load_fvd_extractor()
    evaluator = Evaluator(model, EvalOptions(frames=frames, size=size), lpips=lpips, fvd_extractor=fvd, device=device)
    evaluator.notes.extend(n for n in (lpips_note, fvd_note) if n)
    evaluator.evaluate_clips(str(path), [Clip(video=video, real=video.shape[1], start=0)])
    summary = evaluator.summary()
    return {"video": str(path), "metrics": summary["metrics"], "clips": summary["clips"], "notes": summary["notes"]}
