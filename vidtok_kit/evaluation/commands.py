"""``vidtok-kit eval``: the paper's reconstruction metrics over a dataset (listed in ``cli.COMMAND_MODULES``)."""

from __future__ import annotations

from pathlib import Path

import click

from vidtok_kit.cli_options import compile_option, pretrained_option, resolve_pretrained

__all__ = ["commands", "eval_command"]


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_size(recipe: object, size: int) -> None:
    """Refuse a ``--size`` whose one frame cannot fit the default memory budget even tiled, before
    allocating anything (the model is built on the meta device: no weights are materialised)."""
    import torch

    from vidtok_kit.cli import _registry
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.stream.budget import check_frame_budget

    with torch.device("meta"):
        model = build_model(recipe.model, registry=_registry())  # type: ignore[attr-defined]
    check_frame_budget(model, size, size, max_memory=None, decode=True, what=f"--size {size}")


@click.command("eval")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.argument("data")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Weights (ours or original layout); omitted = random init (warns).")
@pretrained_option
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True, help="Sample rate: every round(source_fps/fps)-th frame.")
@click.option("--size", type=click.IntRange(min=1), default=256, show_default=True, help="Shorter side resized to SIZE, then centre-cropped SIZExSIZE.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="Frames per clip [default: 17 causal, 16 non-causal].")
@click.option("--long", "long_", is_flag=True, help="Whole videos streamed through the model; every real frame scored once.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output folder, created if missing; not an existing file [default: eval-<recipe name>].")
@click.option("--device", default=None, help="torch device [default: cuda if available, else cpu].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="Network precision (quantization stays fp32; metrics are computed in fp32).")
@compile_option("torch.compile the network; auto compiles a clip shape when it comes back (cached on disk).")
@click.option("--sample", is_flag=True, help="Encode with a (seeded) KL posterior sample, as the reference does.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--i3d-weights", type=click.Path(path_type=Path), default=None, help="Local I3D weights for FVD [env VIDTOK_KIT_I3D_WEIGHTS].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (TOML syntax).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def eval_command(
    recipe: Path,
    data: str,
    checkpoint: Path | None,
    pretrained: str | None,
    revision: str | None,
    fps: float,
    size: int,
    frames: int | None,
    long_: bool,
    output: Path | None,
    device: str | None,
    precision: str,
    compile_: str,
    sample: bool,
    seed: int,
    i3d_weights: Path | None,
    overrides: tuple[str, ...],
    progress: bool,
) -> None:
    """Evaluate RECIPE (+ --checkpoint) on DATA: PSNR, SSIM, LPIPS, FVD, codebook usage.

    RECIPE is a path or a shipped recipe's name; with --pretrained NAME the weights are the released
    checkpoint (``eval NAME DATA --pretrained NAME``, or a variant recipe of the same architecture).

    DATA is a video, a folder of videos, a .csv/.txt list of paths, or builtin:samples. Videos are
    cut into consecutive clips (the last padded by repeating its last frame), reconstructed, clamped
    to [-1, 1] and scored per frame exactly as VidTok's evaluation does. Writes per_video.csv,
    summary.json and summary.md; unreadable files are listed and skipped, and make the exit status 1
    after the others are done.
    """
    from vidtok_kit.cli import _registry
    from vidtok_kit.errors import InputError
    from vidtok_kit.evaluation.evaluator import EvalOptions
    from vidtok_kit.evaluation.report import format_value
    from vidtok_kit.evaluation.run import run_eval
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.loading import parse_device
    from vidtok_kit.recipe import load_recipe

    if output is not None:  # before any work: an unwritable folder or an existing file is one line
        check_output(output, kind="dir", what="-o")
    dev = parse_device(device or _default_device())  # before any work: a bad device is one line
    recipe_source, checkpoint = resolve_pretrained(pretrained, checkpoint, recipe, revision=revision)
    r = load_recipe(recipe_source, overrides=overrides, registry=_registry())
    out = output if output is not None else Path(f"eval-{r.name or Path(str(recipe_source)).stem}")
    check_output(out, kind="dir", what="-o")
    _check_size(r, size)
    if checkpoint is None:
        click.echo("warning: no --checkpoint given: evaluating a randomly initialised model", err=True)
    options = EvalOptions(fps=fps, size=size, frames=frames, long=long_, sample=sample, seed=seed, precision=precision,
                          compile=compile_)

    def report(result: object) -> None:
        if getattr(result, "status", "ok") != "ok":
            click.echo(f"skipped {result.path}: {result.error}", err=True)  # type: ignore[attr-defined]

    job = run_eval(
        r,
        data,
        output=out,
        checkpoint=checkpoint,
        options=options,
        device=str(dev),
        i3d_weights=i3d_weights,
        progress=progress,
        on_video=report,
    )
    summary = job.summary
    skipped = summary["skipped"]
    if not summary["videos"]:
        if len(skipped) == 1:  # one bad file: its own one-line reason is the error
            raise InputError(f"{skipped[0]['path']}: {skipped[0]['error']}")
        raise InputError(f"none of the {len(skipped)} videos could be read (listed above)")
    for key, value in summary["metrics"].items():
        click.echo(f"{key:<22}{format_value(value)}")
    click.echo(f"{summary['videos']} videos, {summary['clips']} clips, {summary['scored_frames']} frames -> {out}")
    for note in summary["notes"]:
        click.echo(f"note: {note}", err=True)
    if skipped:
        raise InputError(f"{len(skipped)} of {len(skipped) + summary['videos']} videos could not be read and were skipped (listed above); results for the others are in {out}")


commands = [eval_command]
