"""Run every recipe of an ablation suite: profile, optionally train and evaluate; resumable.

Each run writes ``runs/<name>/result.json`` last and atomically, so an interrupted suite is resumed
by running the same command again: runs whose result exists (for the same mode, steps, input
shape and overrides) are skipped, a run interrupted mid-training (or asked for more ``--steps``)
continues from its newest checkpoint, and the rest are redone from scratch. Stage-2 runs start from their ``init_from`` run's training
directory, which is why runs go in suite order; a stage 2 whose stage 1 was redone is redone too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from vidtok_kit.ablation.suite import Suite, SuiteRun
from vidtok_kit.errors import InputError

__all__ = ["AblateOptions", "profile_recipe", "result_path", "run_suite"]

RESULT_FILE = "result.json"


@attrs.frozen(kw_only=True)
class AblateOptions:
    """How a suite is run (the same options must be given again to resume it)."""

    #: only count parameters and MACs (meta device, seconds per model)
    profile_only: bool = False
    #: training steps per run (None: profile only unless a trainer run is asked for)
    steps: int | None = None
    #: (T, H, W) the MACs are counted for; None = each recipe's train.num_frames at 256x256
    shape: tuple[int, int, int] | None = None
    #: ``--set`` overrides applied to every recipe of the suite
    overrides: tuple[str, ...] = ()
    #: ``train.device`` for training ("auto", "cpu", "cuda"); evaluation follows it
    device: str = "auto"
    #: square evaluation size; None = the suite's ``eval_size``, else its largest train.resolution
    eval_size: int | None = None
    #: recompute runs whose results exist
    fresh: bool = False

    @property
    def mode(self) -> str:
        return "profile" if self.profile_only or not self.steps else "train"

    def key(self) -> dict[str, Any]:
        """What a stored result must match to be reused."""
        return {
            "mode": self.mode,
            "steps": self.steps if self.mode == "train" else None,
            "shape": list(self.shape) if self.shape else None,
            "overrides": list(self.overrides),
        }


def result_path(output: str | Path, run: SuiteRun) -> Path:
    return Path(output) / "runs" / run.name / RESULT_FILE


def profile_recipe(recipe: Any, shape: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Parameters and MACs of one encode + decode, counted on the meta device."""
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.pluginmanager import default_registry
    from vidtok_kit.profile import profile_model

    dims = shape or (recipe.train.num_frames, 256, 256)
    model = build_model(recipe.model, registry=default_registry(), device="meta")
    p = profile_model(model, dims).as_dict()
    return {
        "shape": list(dims),
        "params": p["params"]["total"],
        "params_m": p["params"]["total"] / 1e6,
        "macs": p["macs"],
        "macs_t": p["macs"] / 1e12,
    }


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or torn by a crash: recompute


def _extends(old: Any, new: dict[str, Any]) -> bool:
    """True when ``new`` only asks for more training steps than the stored run had (resume it)."""
    if not isinstance(old, dict) or old.get("mode") != "train" or new["mode"] != "train":
        return False
    same = all(old.get(k) == v for k, v in new.items() if k != "steps")
    return same and int(old.get("steps") or 0) < int(new["steps"] or 0)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_suite(
    suite: Suite,
    output: str | Path,
    options: AblateOptions | None = None,
    *,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run (or resume) every run of ``suite`` into ``output``; returns the results in suite order.

    :raises InputError: ``steps`` requested for a suite whose stage-2 run depends on a run that failed.
    """
    from vidtok_kit.io.outputs import atomic_write_text
    from vidtok_kit.pluginmanager import default_registry
    from vidtok_kit.recipe import dump_recipe, load_recipe

    options = options or AblateOptions()
    output = Path(output)
    registry = default_registry()
    recipes = {run.name: load_recipe(run.recipe, overrides=options.overrides, registry=registry) for run in suite.runs}
    eval_size = options.eval_size or suite.eval_size or max(r.train.resolution for r in recipes.values())
    eval_device = "cuda" if options.device in ("auto", "cuda") and _cuda() else "cpu"
    results: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    redone: set[str] = set()
    for i, run in enumerate(suite.runs, 1):
        path = result_path(output, run)
        old = None if options.fresh else _read_result(path)
        parent_redone = bool(run.init_from) and run.init_from in redone  # its stage 1 changed under it
        if old is not None and old.get("key") == options.key() and not parent_redone:
            echo(f"[{i}/{len(suite.runs)}] {run.name}: done before, skipped ({path})")
            results.append(old)
            by_name[run.name] = old
            continue
        started = time.perf_counter()
        redone.add(run.name)
        recipe = recipes[run.name]
        echo(f"[{i}/{len(suite.runs)}] {run.name}: profiling {run.recipe.name}")
        result: dict[str, Any] = {
            "name": run.name,
            "label": run.label,
            "recipe": str(run.recipe),
            "table": run.table,
            "key": options.key(),
            "profile": profile_recipe(recipe, options.shape),
            "paper": dict(run.paper),
        }
        if options.mode == "train":
            from vidtok_kit.ablation.training import evaluate_heldout, train_run

            init = None
            if run.init_from:
                init = by_name.get(run.init_from, {}).get("train", {}).get("run_dir")
                if not init or not Path(init).is_dir():
                    raise InputError(f"{run.name}: init_from run {run.init_from!r} has no trained run directory")
            echo(f"    training {options.steps} steps" + (f" from {run.init_from}" if run.init_from else ""))
            trained = train_run(
                recipe,
                steps=int(options.steps or 0),
                run_dir=path.parent / "train",
                init_from=init,
                device=options.device,
                fresh=options.fresh or (old is not None and not _extends(old.get("key"), options.key())),
            )
            result["train"] = trained | {"final_loss": trained["losses"][-1] if trained["losses"] else None}
            echo(f"    evaluating on the held-out clip at {eval_size}x{eval_size}")
            result["eval"] = evaluate_heldout(recipe, trained["checkpoint"], size=eval_size, device=eval_device)
        result["seconds"] = time.perf_counter() - started
        atomic_write_text(path.parent / "recipe.resolved.toml", dump_recipe(recipe))
        atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        results.append(result)
        by_name[run.name] = result
    return results
