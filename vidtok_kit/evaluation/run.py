"""One evaluation job end to end: recipe + checkpoint + DATA -> metrics files. What ``vidtok-kit eval`` calls.

The perceptual and FVD networks are optional because their weights cannot be downloaded here:
LPIPS runs when VGG16 and LPIPS-head files are configured (recipe ``train.loss.vgg_weights`` /
``lpips_weights``, or ``VIDTOK_KIT_VGG16_WEIGHTS`` / ``VIDTOK_KIT_LPIPS_WEIGHTS``), FVD when an I3D
file is (``--i3d-weights`` or ``VIDTOK_KIT_I3D_WEIGHTS``). Otherwise the metric is skipped and the
summary says so; a configured file that cannot be loaded is an error, not a silent skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import torch

from vidtok_kit.evaluation.evaluator import EvalOptions, Evaluator
from vidtok_kit.evaluation.inputs import resolve_videos
from vidtok_kit.evaluation.report import atomic_write_text, write_eval_outputs

__all__ = ["EvalJob", "evaluate_videos", "load_fvd_extractor", "load_perceptual", "run_eval"]


def load_perceptual(loss_config: Any = None) -> tuple[Any, str | None]:
    """LPIPS from local files if configured: ``(module, None)``, or ``(None, note)`` saying why not."""
    from vidtok_kit.losses.lpips import ENV_LPIPS_WEIGHTS, ENV_VGG16_WEIGHTS, LPIPS

    vgg = (getattr(loss_config, "vgg_weights", "") or os.environ.get(ENV_VGG16_WEIGHTS) or "").strip()
    lin = (getattr(loss_config, "lpips_weights", "") or os.environ.get(ENV_LPIPS_WEIGHTS) or "").strip()
    if not vgg and not lin:
        return None, f"LPIPS skipped: no VGG16/LPIPS weights (set {ENV_VGG16_WEIGHTS} and {ENV_LPIPS_WEIGHTS})"
    if not vgg or not lin:
        missing = ENV_VGG16_WEIGHTS if not vgg else ENV_LPIPS_WEIGHTS
        return None, f"LPIPS skipped: only one of its two weight files is configured (missing {missing})"
    return LPIPS.from_files(vgg, lin), None


def load_fvd_extractor(path: str | os.PathLike[str] | None = None, *, size: int = 224) -> tuple[Any, str | None]:
    """The I3D feature extractor from a local file if configured, else ``(None, note)``."""
    from vidtok_kit.metrics import I3D_WEIGHTS_ENV, I3DFeatureExtractor, load_i3d

    path = path or os.environ.get(I3D_WEIGHTS_ENV) or None
    if path is None:
        return None, f"FVD skipped: no I3D weights (pass --i3d-weights or set {I3D_WEIGHTS_ENV})"
    return I3DFeatureExtractor(load_i3d(path), size=size), None


def evaluate_videos(
    evaluator: Evaluator,
    videos: Iterable[Path],
    *,
    progress: bool = True,
    on_video: Callable[[Any], None] | None = None,
) -> Evaluator:
    """Run ``evaluator`` over ``videos`` with a tqdm bar (clips) on stderr; returns the evaluator."""
    from tqdm import tqdm

    videos = list(videos)
    with tqdm(total=len(videos), unit="video", disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        for path in videos:
            bar.set_description(Path(path).name[:30])
            if evaluator.options.long:
                from vidtok_kit.evaluation.long import evaluate_long_video

                result = evaluate_long_video(evaluator, path)
            else:
                result = evaluator.evaluate_video(path)
            if result.status == "ok" and result.psnr is not None:
                bar.set_postfix(psnr=f"{result.psnr:.2f}", ssim=f"{result.ssim:.3f}")
            if on_video is not None:
                on_video(result)
            bar.update(1)
    return evaluator


@attrs.frozen(kw_only=True)
class EvalJob:
    """What :func:`run_eval` produced: the summary, the per-video rows and the files written."""

    summary: dict[str, Any]
    results: list[Any]
    files: dict[str, Path]


def run_eval(
    recipe: Any,
    data: str | Path,
    *,
    output: str | Path,
    checkpoint: str | Path | None = None,
    options: EvalOptions | None = None,
    device: str = "cpu",
    i3d_weights: str | Path | None = None,
    i3d_size: int = 224,
    lpips: Any = None,
    fvd_extractor: Any = None,
    progress: bool = True,
    on_video: Callable[[Any], None] | None = None,
) -> EvalJob:
    """Evaluate a tokenizer on DATA; write ``per_video.csv``, ``summary.json``, ``summary.md`` and the resolved recipe.

    :param recipe: a recipe path or :class:`~vidtok_kit.recipe.Recipe`.
    :param data: anything :func:`~vidtok_kit.evaluation.inputs.resolve_videos` accepts.
    :param checkpoint: weights (ours or the original layout); None evaluates a random init (noted).
    :param lpips: / :param fvd_extractor: networks to use instead of loading them from weight files.
    :return: the summary and the written files. Unreadable videos are listed under ``skipped``.
    """
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.loading import load
    from vidtok_kit.pluginmanager import default_registry
    from vidtok_kit.recipe import dump_recipe, load_recipe

    check_output(output, kind="dir", what="output")  # before any work, not after the last video
    options = options or EvalOptions()
    r = load_recipe(recipe, registry=default_registry())
    videos = resolve_videos(data, root=r.data.root or None)
    notes: list[str] = []
    model = load(r, checkpoint, device=device, dtype=options.precision, compile=options.compile)
    if checkpoint is None:
        notes.append("no checkpoint: the model is randomly initialised, so the numbers only test the pipeline")
    if lpips is None:
        lpips, note = load_perceptual(r.train.loss)
        notes += [note] if note else []
    if fvd_extractor is None:
        fvd_extractor, note = load_fvd_extractor(i3d_weights, size=i3d_size)
        notes += [note] if note else []
    if options.long:
        notes.append(
            "--long: whole videos streamed through the model (vidtok_kit.stream), every real frame scored "
            "once; FVD over consecutive clips of the reconstruction"
        )
        if options.sample:
            notes.append("--sample is ignored with --long: streaming encodes the posterior mean")
    evaluator = Evaluator(model, options, lpips=lpips, fvd_extractor=fvd_extractor, device=device)
    evaluator.notes.extend(notes)
    with torch.inference_mode():
        evaluate_videos(evaluator, videos, progress=progress, on_video=on_video)
    summary = {
        "recipe": str(recipe) if not hasattr(recipe, "model") else (r.name or "<recipe>"),
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "data": str(data),
        "options": {**attrs.asdict(options), "device": device},
        "model": {"params": sum(p.numel() for p in model.model.parameters()), "discrete": bool(model.discrete)},
        **evaluator.summary(),
    }
    files = write_eval_outputs(output, evaluator.results, summary)
    files["recipe"] = atomic_write_text(Path(output) / "recipe.resolved.toml", dump_recipe(r))
    return EvalJob(summary=summary, results=list(evaluator.results), files=files)
