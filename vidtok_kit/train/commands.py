"""``vidtok-kit train`` and ``vidtok-kit demo``: parse, call one library function, report.

``train`` is also what ``torchrun --nproc-per-node K --no-python vidtok-kit train RECIPE``
starts K times. ``demo`` is the README's first command: a tiny tokenizer trained on the built-in
sample videos on a CPU in minutes, then scored on a sample it never saw.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["commands", "demo_command", "find_demo_recipe", "train_command"]

#: the shipped recipe ``demo`` trains (package data: found from a wheel too, outside any checkout)
DEMO_RECIPE = "tiny/demo"


def _setup_logging(rank: int) -> None:
    logger = logging.getLogger("vidtok_kit.train")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[rank {rank}] %(levelname)s %(message)s" if rank else "%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logger.propagate = False


def _load(recipe: Path, overrides: tuple[str, ...], data: str | None) -> Any:
    from vidtok_kit.cli import _registry
    from vidtok_kit.recipe import load_recipe

    extra = [f"data.train={json.dumps(data)}"] if data else []
    return load_recipe(recipe, overrides=[*extra, *overrides], registry=_registry())


@click.command("train")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--data", default=None, metavar="PATH", help="Training videos: folder, CSV/text list or builtin:samples (sets data.train).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (TOML syntax).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory (default: runs/<recipe name>).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in the run directory.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train_command(recipe: Path, data: str | None, overrides: tuple[str, ...], out: Path | None, resume: bool, no_progress: bool) -> None:
    """Train a tokenizer; launch with torchrun --no-python for several processes or nodes."""
    from vidtok_kit.cli import _registry
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.train import run
    from vidtok_kit.train.distributed import DistInfo

    info = DistInfo.from_env()
    _setup_logging(info.rank)
    r = _load(recipe, overrides, data)
    run_dir = check_output(out or Path("runs") / (r.name or recipe.stem), kind="dir", what="--out")
    trainer = run(r, run_dir, registry=_registry(), resume=resume, progress=not no_progress)
    if info.is_main:
        click.echo(f"trained {trainer.step} steps -> {trainer.last_checkpoint}")
        for key, value in trainer.last_eval.items():
            click.echo(f"{key:<10} {value:.4f}")


def find_demo_recipe() -> Path:
    """The shipped ``tiny/demo`` recipe (``recipes/tiny/demo.toml``), from the installed package."""
    from vidtok_kit.errors import InputError
    from vidtok_kit.recipes_index import shipped_recipe

    path = shipped_recipe(DEMO_RECIPE)
    if path is None:
        raise InputError(f"the shipped recipe {DEMO_RECIPE!r} is missing from this installation of vidtok-kit; pass --recipe")
    return path


def run_demo(recipe: Any, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Train (or finish training) ``recipe`` into ``out``, then score the held-out video.

    :return: paths and metrics (also written to ``out/demo/heldout.json``).
    """
    from vidtok_kit.io.outputs import atomic_write
    from vidtok_kit.train import run
    from vidtok_kit.train.heldout import compare_on_heldout
    from vidtok_kit.train.reporting import plot_losses, write_preview_grid, write_side_by_side

    start = time.perf_counter()
    trainer = run(recipe, out, resume=True, progress=progress)
    seconds = time.perf_counter() - start
    model = (trainer.ema.model if trainer.ema is not None else trainer.model).cpu()
    res = compare_on_heldout(recipe, model)
    x, y = res.pop("input"), res.pop("recon")
    res.pop("baseline")
    demo = out / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    fps = recipe.data.val_sample_fps
    plot = plot_losses(trainer.metrics.records, out / "loss.png") if trainer.metrics is not None else None
    res.update(
        steps=trainer.step,
        train_seconds=round(seconds, 1),
        side_by_side=str(write_side_by_side(x, y, demo / "heldout_side_by_side.mp4", fps=fps)),
        frames_png=str(write_preview_grid(x[:, : res["frames"]], y[:, : res["frames"]], demo / "heldout_frames.png") or ""),
        loss_plot=str(plot) if plot is not None else None,
        checkpoint=str(trainer.last_checkpoint / "model.safetensors") if trainer.last_checkpoint else None,
    )
    text = json.dumps(res, indent=2) + "\n"
    atomic_write(demo / "heldout.json", lambda tmp: tmp.write_text(text))
    res["metrics_json"] = str(demo / "heldout.json")
    return res


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True, help="Run directory.")
@click.option("--recipe", type=click.Path(path_type=Path), default=None, help=f"Recipe (default: {DEMO_RECIPE}).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (TOML syntax).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def demo_command(out: Path, recipe: Path | None, overrides: tuple[str, ...], no_progress: bool) -> None:
    """Train a tiny tokenizer on the built-in sample videos (CPU, minutes) and score a held-out clip."""
    from vidtok_kit.io.outputs import check_output

    _setup_logging(0)
    check_output(out, kind="dir", what="--out")
    r = _load(recipe or find_demo_recipe(), overrides, None)
    res = run_demo(r, out, progress=not no_progress)
    tok, base = res["tokenizer"], res["resampling_baseline"]
    name = Path(res["video"]).name
    click.echo(f"trained {res['steps']} steps in {res['train_seconds']:.0f} s (this run)")
    click.echo(f"held-out video {name} (never trained on): {res['clips']} clips of {res['frames']} frames at {res['size']}x{res['size']}")
    click.echo(f"  tokenizer            PSNR {tok['psnr']:.2f} dB  SSIM {tok.get('ssim', float('nan')):.3f}  ({res['latent_numbers']} numbers per clip)")
    click.echo(f"  resampling baseline  PSNR {base['psnr']:.2f} dB  SSIM {base.get('ssim', float('nan')):.3f}  ({res['baseline_numbers']} numbers per clip)")
    click.echo(f"side-by-side video:  {res['side_by_side']}")
    click.echo(f"frames (top: input): {res['frames_png']}")
    click.echo(f"loss plot:           {res['loss_plot']}")
    click.echo(f"metrics:             {res['metrics_json']}")
    click.echo(f"checkpoint:          {res['checkpoint']}")


commands = [train_command, demo_command]
