"""Ablation suites: run a set of recipes, compare them with the paper, and draw the comparison.

:mod:`~vidtok_kit.ablation.suite` reads suites, :mod:`~vidtok_kit.ablation.runner` profiles /
trains / evaluates each run (resumably), :mod:`~vidtok_kit.ablation.training` runs one training
through :mod:`vidtok_kit.train` and scores it on the held-out clip, and
:mod:`~vidtok_kit.ablation.report` writes the table and chart for ``vidtok-kit ablate``.
"""

from __future__ import annotations

from vidtok_kit._lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "write_report": "report",
    **dict.fromkeys(["AblateOptions", "profile_recipe", "run_suite"], "runner"),
    **dict.fromkeys(["Suite", "SuiteRun", "load_suite"], "suite"),
})

__all__ = ["AblateOptions", "Suite", "SuiteRun", "load_suite", "profile_recipe", "run_suite", "write_report"]
