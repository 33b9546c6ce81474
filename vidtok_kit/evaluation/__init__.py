"""Evaluation: the paper's reconstruction protocol over a dataset, and its reports.

:mod:`~vidtok_kit.evaluation.inputs` turns DATA into videos and videos into clips,
:mod:`~vidtok_kit.evaluation.evaluator` scores them, :mod:`~vidtok_kit.evaluation.report` writes
the CSV / JSON / markdown files and :mod:`~vidtok_kit.evaluation.run` ties them together for
``vidtok-kit eval``.
"""

from __future__ import annotations

from vidtok_kit._lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["EvalOptions", "Evaluator", "VideoResult", "default_clip_frames"], "evaluator"),
    **dict.fromkeys(["iter_eval_clips", "resolve_videos"], "inputs"),
    **dict.fromkeys(["EvalJob", "run_eval"], "run"),
})

__all__ = [
    "EvalJob",
    "EvalOptions",
    "Evaluator",
    "VideoResult",
    "default_clip_frames",
    "iter_eval_clips",
    "resolve_videos",
    "run_eval",
]
