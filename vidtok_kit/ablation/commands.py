"""``vidtok-kit ablate``: run an ablation suite and write its comparison table and chart."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["ablate_command", "commands"]


@click.command("ablate")
@click.argument("suite", type=click.Path(path_type=Path))
@click.option("--profile-only", is_flag=True, help="Only count parameters and MACs (meta device, no training).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Train every run N steps, then evaluate it.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Output folder [default: ablation-<suite name>].")
@click.option("--shape", default=None, help="T,H,W the MACs are counted for, at most 16384,8192,8192 [default: the recipe's frames at 256x256].")
@click.option("--eval-size", type=click.IntRange(min=8), default=None, help="Evaluation resolution [default: largest train.resolution].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Training device (train.device); evaluation follows.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a value in every recipe of the suite.")
@click.option("--fresh", is_flag=True, help="Recompute runs whose results already exist.")
def ablate_command(
    suite: Path,
    profile_only: bool,
    steps: int | None,
    output: Path | None,
    shape: str | None,
    eval_size: int | None,
    device: str,
    overrides: tuple[str, ...],
    fresh: bool,
) -> None:
    """Run every recipe of SUITE and compare them (table in markdown and CSV, and a chart).

    SUITE is a folder of recipes, or a suite TOML (a folder's own suite.toml is used when present)
    that orders runs, chains two-stage runs and quotes the paper's numbers. Without --steps (or with
    --profile-only) each run is profiled; with --steps N it is also trained N steps by the trainer
    (vidtok_kit.train) and evaluated on the held-out clip of the built-in sample videos.
    Interrupted? Run the same command again: finished runs are skipped, a run stopped mid-training
    resumes from its last checkpoint (--fresh redoes everything).
    """
    from vidtok_kit.ablation.report import comparison_markdown, write_report
    from vidtok_kit.ablation.runner import AblateOptions, run_suite
    from vidtok_kit.ablation.suite import load_suite
    from vidtok_kit.cli import _registry
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.profile import parse_shape

    dims = parse_shape(shape) if shape is not None else None
    _registry()  # honour --disable-plugin before recipes are resolved
    s = load_suite(suite)
    out = check_output(output if output is not None else Path(f"ablation-{s.name}"), kind="dir", what="-o")
    options = AblateOptions(
        profile_only=profile_only,
        steps=None if profile_only else steps,
        shape=dims,
        overrides=overrides,
        device=device,
        eval_size=eval_size,
        fresh=fresh,
    )
    results = run_suite(s, out, options, echo=lambda line: click.echo(line, err=True))
    files = write_report(results, out, title=s.title)
    click.echo(comparison_markdown(results, title=s.title), nl=False)
    click.echo(f"\nwrote {files['markdown']}, {files['csv']}, {files['chart']}")


commands = [ablate_command]
