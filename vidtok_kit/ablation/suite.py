"""Ablation suites: which recipes are compared, in which order, how they chain, and the paper's numbers.

A suite is either a directory of recipes (every ``*.toml`` in it, by file name) or a suite TOML
file. A directory that contains ``suite.toml`` uses that file. The file's format::

    title = "VidTok Table 2: architecture"       # optional; name defaults to the file/dir stem
    eval_size = 256                             # optional: evaluation resolution (default: largest train.resolution)
    [[run]]
    recipe = "variant1_fully_3d.toml"           # relative to the suite file
    name = "variant1"                           # optional, default: the recipe's file stem
    label = "Variant 1"                         # optional, default: the name
    init_from = ""                              # optional: an earlier run whose final weights start this one
    table = true                                # false: a helper run (e.g. a stage 1) left out of the table
    [run.paper]                                 # optional: published numbers shown beside ours
    params_m = 245
    macs_t = 16.98

``init_from`` is how two-stage training (paper Table 4) is expressed: stage 2 names the stage-1
run, and the runner starts it from that run's trained checkpoint.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import attrs

from vidtok_kit.errors import InputError

__all__ = ["PAPER_KEYS", "SUITE_FILE", "Suite", "SuiteRun", "load_suite"]

#: name of the suite file a recipe directory may contain
SUITE_FILE = "suite.toml"
#: published values a suite may quote, and what they mean
PAPER_KEYS: dict[str, str] = {
    "params_m": "parameters, millions",
    "macs_t": "multiply-accumulates of one encode + decode, tera",
    "psnr": "PSNR, dB",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "fvd": "FVD",
    "codebook_utilisation": "codebook utilisation rate",
    "gpu_hours": "training cost, A100 GPU hours",
}
_RUN_KEYS = {"recipe", "name", "label", "init_from", "table", "paper"}
_SUITE_KEYS = {"title", "name", "description", "eval_size", "run"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@attrs.frozen(kw_only=True)
class SuiteRun:
    """One row of an ablation: a recipe and how to present it."""

    name: str
    recipe: Path
    label: str
    #: name of an earlier run whose final checkpoint initialises this one ("" = fresh)
    init_from: str = ""
    #: False for helper runs that are trained but not shown (a stage 1 no row reports)
    table: bool = True
    #: the paper's numbers for this row (keys of :data:`PAPER_KEYS`)
    paper: dict[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Suite:
    name: str
    title: str
    source: Path
    runs: tuple[SuiteRun, ...]
    description: str = ""
    #: square evaluation resolution after training (None: the largest train.resolution of the runs)
    eval_size: int | None = None

    @property
    def table_runs(self) -> tuple[SuiteRun, ...]:
        return tuple(r for r in self.runs if r.table)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _parse_run(table: Any, index: int, path: Path, seen: list[str]) -> SuiteRun:
    where = f"{path}: run[{index}]"
    if not isinstance(table, dict):
        raise InputError(f"{where}: expected a [[run]] table, got {type(table).__name__}")
    extra = sorted(set(table) - _RUN_KEYS)
    if extra:
        raise InputError(f"{where}: unknown keys {extra} (allowed: {sorted(_RUN_KEYS)})")
    recipe = table.get("recipe")
    if not isinstance(recipe, str) or not recipe:
        raise InputError(f"{where}: 'recipe' must be a path to a recipe file")
    recipe_path = (path.parent / recipe).resolve()
    if not recipe_path.is_file():
        raise InputError(f"{where}: recipe {recipe} not found (looked for {recipe_path})")
    name = table.get("name", Path(recipe).stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{where}: name {name!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
    if name in seen:
        raise InputError(f"{where}: run name {name!r} is used twice")
    init_from = table.get("init_from", "")
    if not isinstance(init_from, str) or (init_from and init_from not in seen):
        raise InputError(f"{where}: init_from {init_from!r} must name an earlier run ({', '.join(seen) or 'none yet'})")
    label = table.get("label", name)
    show = table.get("table", True)
    if not isinstance(label, str) or not isinstance(show, bool):
        raise InputError(f"{where}: 'label' must be a string and 'table' a boolean")
    paper = table.get("paper", {})
    if not isinstance(paper, dict):
        raise InputError(f"{where}: 'paper' must be a table of numbers")
    bad = sorted(k for k, v in paper.items() if k not in PAPER_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)))
    if bad:
        raise InputError(f"{where}: paper: bad keys or non-numbers {bad} (allowed keys: {', '.join(PAPER_KEYS)})")
    return SuiteRun(
        name=name, recipe=recipe_path, label=label, init_from=init_from, table=show,
        paper={k: float(v) for k, v in paper.items()},
    )


def _from_file(path: Path) -> Suite:
    data = _load_toml(path)
    extra = sorted(set(data) - _SUITE_KEYS)
    if extra:
        raise InputError(f"{path}: unknown keys {extra} (a suite has {sorted(_SUITE_KEYS)}; is this a recipe? pass its folder)")
    tables = data.get("run")
    if not isinstance(tables, list) or not tables:
        raise InputError(f"{path}: a suite needs at least one [[run]] table")
    runs: list[SuiteRun] = []
    for i, table in enumerate(tables):
        runs.append(_parse_run(table, i, path, [r.name for r in runs]))
    eval_size = data.get("eval_size")
    if eval_size is not None and (isinstance(eval_size, bool) or not isinstance(eval_size, int) or eval_size < 8):
        raise InputError(f"{path}: eval_size must be an integer >= 8 (pixels), got {eval_size!r}")
    default_name = path.parent.name if path.name == SUITE_FILE else path.name.removesuffix(".toml")
    name = data.get("name", default_name)
    return Suite(
        name=str(name),
        title=str(data.get("title", name)),
        source=path,
        runs=tuple(runs),
        description=str(data.get("description", "")),
        eval_size=eval_size,
    )


def load_suite(path: str | Path) -> Suite:
    """A suite from a directory of recipes (or its ``suite.toml``) or from a suite TOML file.

    :raises InputError: one line naming the file and what is wrong with it.
    """
    path = Path(path)
    if path.is_dir():
        if (path / SUITE_FILE).is_file():
            return _from_file(path / SUITE_FILE)
        recipes = sorted(p for p in path.glob("*.toml") if p.name != SUITE_FILE)
        if not recipes:
            raise InputError(f"{path}: no recipes (*.toml) in this folder")
        runs = tuple(SuiteRun(name=p.stem, recipe=p.resolve(), label=p.stem) for p in recipes)
        return Suite(name=path.name, title=path.name, source=path, runs=runs)
    if path.is_file():
        return _from_file(path)
    raise InputError(f"{path}: no such suite (expected a folder of recipes or a suite .toml file)")
