"""CLI commands of the export subsystem, added through the same hook a third-party plugin uses.

``vidtok-kit export RECIPE -o DIR [--onnx] [--trt] ...`` calls
:func:`vidtok_kit.export.pipeline.export_tokenizer`; torch, onnx and tensorrt are imported inside
the command so ``vidtok-kit --help`` stays fast and works without the export extras.
"""

from __future__ import annotations

from pathlib import Path

import click

from vidtok_kit import hookimpl
from vidtok_kit.cli_options import pretrained_option, resolve_pretrained

__all__ = ["export_command"]


@click.command("export")
@click.argument("recipe", required=False, type=click.Path(path_type=Path))
@click.option("--checkpoint", "-c", type=click.Path(path_type=Path), help="Weights (ours or an original VidTok checkpoint); default: random init.")
@pretrained_option
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Export directory (created atomically).")
@click.option("--onnx", "want_onnx", is_flag=True, help="Export ONNX graphs (the default; always done, --trt builds from them).")
@click.option("--trt", "want_trt", is_flag=True, help="Also build TensorRT engines (needs tensorrt and a CUDA GPU).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="TensorRT engine precision; fp16 also writes fp16 copies of the encoder and decoder ONNX graphs "
                   "(NAME.fp16.onnx, for GPU providers: vidtok_kit.load(DIR, backend='onnx', dtype='fp16')).")
@click.option("--opset", type=int, default=18, show_default=True, help="ONNX opset (>= 18; TensorRT 10.0 parses up to 20).")
@click.option("--shapes", default=None, metavar="TxHxW,TxHxW,TxHxW",
              help="min,opt,max input sizes, checked by parity and used for TensorRT profiles (default: from the recipe).")
@click.option("--batch", default=None, metavar="MIN,OPT,MAX", help="Batch range (default 1,1,2).")
@click.option("--stream-chunk", type=int, default=4, show_default=True, help="Latents per streaming step (causal models).")
@click.option("--no-stream", is_flag=True, help="Skip the streaming step graphs.")
@click.option("--tolerance", type=float, default=None,
              help="Max parity error relative to the output range (default: fp32 1e-4, fp16 1e-2, bf16 3e-2).")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch.onnx exporter (dynamo needs onnxscript and is much slower).")
@click.option("--workspace-gb", type=float, default=4.0, show_default=True, help="TensorRT builder workspace limit.")
@click.option("--timing-cache", type=click.Path(path_type=Path), default=None,
              help="TensorRT timing cache file to reuse and update (default: DIR/timing.cache).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (TOML syntax).")
@click.option("--force", is_flag=True, help="Replace an existing non-empty output directory.")
@click.option("--full-parity", is_flag=True,
              help="Check every graph at the real min/opt/max sizes (default: max at a reduced spatial size, opt in full).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final line.")
def export_command(
    recipe: Path | None,
    checkpoint: Path | None,
    pretrained: str | None,
    revision: str | None,
    output: Path,
    want_onnx: bool,
    want_trt: bool,
    precision: str,
    opset: int,
    shapes: str | None,
    batch: str | None,
    stream_chunk: int,
    no_stream: bool,
    tolerance: float | None,
    exporter: str,
    workspace_gb: float,
    timing_cache: Path | None,
    overrides: tuple[str, ...],
    force: bool,
    full_parity: bool,
    quiet: bool,
) -> None:
    """Export a tokenizer to ONNX (and TensorRT), checked against PyTorch at min/opt/max shapes.

    Writes DIR/manifest.json describing every graph (inputs, outputs, dtypes, shape ranges, parity
    results), the recipe and the checkpoint hash. The export fails, leaving nothing behind, if a graph
    fails onnx.checker, uses an operator TensorRT 10 does not support, or differs from PyTorch by
    more than the tolerance (fp32: 1e-4 of the output range).
    """
    from vidtok_kit.export.shapes import parse_range

    if recipe is None and checkpoint is None and pretrained is None:
        raise click.UsageError("give a RECIPE, a --checkpoint that stores its recipe, or --pretrained NAME")
    if recipe is not None and not recipe.is_file():
        raise click.BadParameter(f"{recipe}: no such recipe file", param_hint="RECIPE")
    recipe, checkpoint = resolve_pretrained(pretrained, checkpoint, recipe, revision=revision)
    from vidtok_kit.export.pipeline import export_tokenizer

    manifest = export_tokenizer(
        recipe,
        output,
        checkpoint=checkpoint,
        onnx=True,
        trt=want_trt,
        precision=precision,
        opset=opset,
        shapes=shapes,
        batch=parse_range(batch, what="--batch") if batch else None,
        stream_chunk=None if no_stream else stream_chunk,
        tolerance=tolerance,
        exporter=exporter,
        workspace_gb=workspace_gb,
        timing_cache=timing_cache,
        overrides=overrides,
        force=force,
        full_parity=full_parity,
        log=(lambda _: None) if quiet else click.echo,
    )
    engines = f" and {len(manifest['engines'])} TensorRT engines" if manifest["engines"] else ""
    click.echo(f"exported {len(manifest['graphs'])} graphs{engines} to {output} (parity ok)")


@hookimpl
def vidtok_kit_add_commands(cli: click.Group) -> None:
    cli.add_command(export_command)
