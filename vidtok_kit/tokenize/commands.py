"""``vidtok-kit encode / decode / reconstruct``: video files to token files and back (listed in ``cli.COMMAND_MODULES``).

Thin click wrappers over :mod:`vidtok_kit.tokenize.pipeline`. A bad file is reported as one line
naming it; in a multi-file run the other files still complete, the failures are listed at the end
and the exit status is 1. Token files are written atomically, so a finished one is never partial
and a re-run skips it (resumable).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from vidtok_kit.cli_options import compile_option, pretrained_option, resolve_pretrained

__all__ = ["commands", "decode_command", "encode_command", "reconstruct_command"]


def _video_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Resample to this frame rate (nearest frame by timestamp) [default: the video's]; at most 4x the "
                          "video's rate (upsampling repeats frames)."),
        click.option("--size", type=click.IntRange(min=1), default=None, help="Resize the shorter side to SIZE, then --resize (crop: centre crop SIZExSIZE)."),
        click.option("--resize", type=click.Choice(["crop", "pad", "none"]), default=None,
                     help="crop: centre crop; pad: edge-pad to the model's multiple (cropped back when decoding); none: the size must fit [default: crop with --size, else none]."),
        click.option("--start", "start_s", type=click.FloatRange(min=0), default=None, help="Start of the time window in seconds."),
        click.option("--end", "end_s", type=click.FloatRange(min=0, min_open=True), default=None, help="End of the time window in seconds (exclusive)."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


def _run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1, ...)."),
        click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True, help="Encoder/decoder precision (quantization stays fp32)."),
        compile_option("torch.compile the network: auto compiles a step shape once its eager calls have taken about as "
                       "long as compiling it would (a long video's steady chunks, a folder's clips); compiled graphs are "
                       "cached on disk, so later runs start faster."),
        click.option("--chunk-frames", type=click.IntRange(min=1), default=None, help="Frames per streaming step (a multiple of the temporal factor) [default: from --max-memory]."),
        click.option("--max-memory", default=None,
                     help="Peak memory of the whole process, e.g. 4G [default: half the machine's memory, 4G to 16G]: picks chunk and tile sizes (what torch.compile "
                          "holds is set aside; --compile auto does not compile under about 2G); a frame that cannot fit even "
                          "tiled is refused before any work."),
        click.option("--tile", type=click.IntRange(min=1), default=None, help="Spatial tile side in pixels for frames too large to run whole."),
        click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: when stderr is a terminal]."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


def _policy(model: Any, fps: float | None, size: int | None, resize: str | None, start_s: float | None, end_s: float | None) -> Any:
    from vidtok_kit.errors import InputError
    from vidtok_kit.io import ClipPolicy

    mode: Any = resize or ("crop" if size is not None else "none")
    try:
        return ClipPolicy(fps=fps, size=size, resize=mode, multiple=model.spatial_factor, start_s=start_s, end_s=end_s)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _load(recipe: Path | str | None, checkpoint: Path | None, *, device: str, precision: str, compile_: str,
          stored_recipe: str | None = None, stored_in: Path | None = None) -> Any:
    from vidtok_kit.cli import _registry
    from vidtok_kit.tokenize.pipeline import load_tokenizer

    return load_tokenizer(recipe, checkpoint, registry=_registry(), device=device, precision=precision, compile=compile_,
                          stored_recipe=stored_recipe, stored_in=stored_in)


def _run(chunk_frames: int | None, max_memory: str | None, tile: int | None, precision: str, compile_: str) -> tuple[Any, str]:
    """The run options and the compile mode: ``--max-memory`` is the whole process's budget, so
    the part torch.compile would hold is kept out of what the stream planner may use."""
    from vidtok_kit.stream import parse_memory
    from vidtok_kit.stream.budget import DEFAULT_MAX_MEMORY, split_compile_budget
    from vidtok_kit.tokenize.pipeline import RunOptions

    total = parse_memory(max_memory) if max_memory else DEFAULT_MAX_MEMORY
    budget, compile_ = split_compile_budget(total, compile_)
    return RunOptions(chunk_frames=chunk_frames, max_memory=budget, tile=tile, precision=precision, reserved=total - budget), compile_


def _progress(enabled: bool | None, label: str) -> Callable[[int | None], Callable[[int], None]]:
    """A factory of per-file frame progress bars (tqdm on stderr; off when not a terminal by default)."""
    from tqdm import tqdm

    def start(total: int | None) -> Callable[[int], None]:
        bar = tqdm(total=total, unit="frame", desc=label, disable=None if enabled is None else not enabled, leave=False)
        return bar.update

    return start


def _warn_random(checkpoint: Path | None) -> None:
    if checkpoint is None:
        click.echo("warning: no --checkpoint given: the model is randomly initialised (seed 0); its output is only good for testing", err=True)


def _jobs(videos: tuple[Path, ...], output: Path) -> list[tuple[Path, Path]]:
    """(source, token file) pairs: one file to a ``.safetensors`` path, otherwise into a folder."""
    from vidtok_kit.errors import InputError
    from vidtok_kit.io.suffixes import find_videos

    if len(videos) == 1 and not videos[0].is_dir() and output.suffix == ".safetensors":
        return [(videos[0], output)]
    if output.suffix == ".safetensors":
        raise InputError(f"{output}: several inputs need an output folder, not a .safetensors file")
    jobs: list[tuple[Path, Path]] = []
    for video in videos:
        if video.is_dir():
            jobs += [(p, output / p.relative_to(video).with_suffix(".safetensors")) for p in find_videos(video)]
        else:
            jobs.append((video, output / f"{video.stem}.safetensors"))
    seen: dict[Path, Path] = {}
    for src, dst in jobs:
        if dst in seen:
            raise InputError(f"{src} and {seen[dst]} would both be written to {dst}")
        seen[dst] = src
    return jobs


def _finished(src: Path, dst: Path, provenance: dict[str, Any]) -> bool:
    """True if ``dst`` is a complete token file of ``src`` from the same model (resume); an error
    if it holds something else (another model's or another video's tokens, or no tokens at all),
    which is never replaced without ``--overwrite``."""
    from vidtok_kit.errors import InputError
    from vidtok_kit.tokenize.tokens import read_token_meta

    if not dst.exists():
        return False
    meta = read_token_meta(dst)
    if meta.recipe != provenance["recipe"] or meta.checkpoint_sha256 != provenance["checkpoint_sha256"]:
        raise InputError(f"{dst}: exists but was made with another recipe or checkpoint (use --overwrite)")
    if Path(meta.source).name != src.name:
        raise InputError(f"{dst}: exists and holds the tokens of another video ({meta.source}); use --overwrite to replace it")
    return True


#: suffixes of single tensor files other than safetensors: as ``-o`` of encode, a mistaken file name
_TENSOR_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".npy", ".npz", ".bin")


def _check_outputs(jobs: list[tuple[Path, Path]], output: Path, videos: tuple[Path, ...], *, single: bool) -> None:
    """The output policy before any work: ``-o`` writable, a file or a folder as the mode needs,
    and never one of the inputs (``encode X -o X --overwrite``)."""
    from vidtok_kit.errors import InputError
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.io.suffixes import VIDEO_SUFFIXES

    if single:  # an existing token file is the resume rule's business (_finished), not an error here
        check_output(output, kind="file", overwrite=True, inputs=[jobs[0][0]], what="-o")
        return
    check_output(output, kind="dir", inputs=sorted({src for src, _ in jobs} | set(videos)), what="-o")
    suffix = output.suffix.lower()
    if suffix in VIDEO_SUFFIXES + _TENSOR_FILE_SUFFIXES and not output.is_dir():
        # a file name, not a folder: making a folder called out.mp4 would only surprise
        raise InputError(
            f"-o {output}: encode writes token files (.safetensors), not {output.suffix} files; give a .safetensors "
            "path (one video) or a folder" + (" (reconstruct writes a video)" if suffix in VIDEO_SUFFIXES else "")
        )


@click.command("encode")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--recipe", type=click.Path(path_type=Path), default=None, help="Model recipe (may be omitted with a vidtok-kit checkpoint).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Weights; omitted = random init (warns).")
@pretrained_option
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Token file (.safetensors) for one video, else a folder.")
@click.option("--overwrite", is_flag=True, help="Re-encode videos whose token file exists (default: skip a finished token file of the same "
                                                "video and model, so runs resume; refuse any other existing file).")
@click.option("--backend", type=click.Choice(["torch", "onnx", "tensorrt"]), default="torch", show_default=True,
              help="Run PyTorch, or the graphs of an export directory (--export) with ONNX Runtime / TensorRT.")
@click.option("--export", "export_dir", type=click.Path(path_type=Path), default=None,
              help="Export directory written by `vidtok-kit export` (needed with --backend onnx|tensorrt).")
@click.option("--format", "fmt", type=click.Choice(["files", "shards"]), default="files", show_default=True,
              help="files: one token file per video, mirroring the input folders; shards: WebDataset-style tar shards "
                   "of --shard-size clips plus index.json in OUTPUT, read by vidtok_kit.data.TokenDataset.")
@click.option("--shard-size", type=click.IntRange(min=1), default=256, show_default=True, help="Clips per shard (--format shards).")
@_video_options
@_run_options
def encode_command(videos: tuple[Path, ...], recipe: Path | None, checkpoint: Path | None, pretrained: str | None, revision: str | None,
                   output: Path, overwrite: bool, fmt: str, shard_size: int,
                   backend: str, export_dir: Path | None, fps: float | None, size: int | None, resize: str | None, start_s: float | None, end_s: float | None,
                   device: str, precision: str, compile_: str, chunk_frames: int | None, max_memory: str | None, tile: int | None,
                   progress: bool | None) -> None:
    """Encode VIDEOS (files or folders) into token files: FSQ indices or KL latents, plus metadata.

    Streams each video chunk by chunk, so any length fits in memory. A folder is searched
    recursively and mirrored under OUTPUT; finished token files are skipped on a re-run.

    Under torchrun (`torchrun --nproc-per-node N --no-python vidtok-kit encode DIR -o OUT`) the
    files are split across the ranks, balanced by duration, each encoded exactly once on its
    rank's device (`--device cuda`: one GPU per local rank); the summary is printed by rank 0.
    """
    from vidtok_kit.errors import InputError
    from vidtok_kit.loading import parse_device
    from vidtok_kit.tokenize.pipeline import encode_file
    from vidtok_kit.tokenize.ranks import rank_device
    from vidtok_kit.train.distributed import DistInfo

    if fmt == "shards" and output.suffix == ".safetensors":
        raise InputError(f"{output}: --format shards writes a folder of shards, not a .safetensors file")
    jobs = _jobs(videos, output)
    single = len(jobs) == 1 and jobs[0][1] == output
    _check_outputs(jobs, output, videos, single=single)
    info = DistInfo.from_env()
    device = rank_device(device, info.local_rank) if info.enabled else device
    parse_device(device)  # before any work: a bad device is one line
    run, compile_ = _run(chunk_frames, max_memory, tile, precision, compile_)
    if backend != "torch":
        from vidtok_kit.loading import load

        if export_dir is None:
            raise InputError(f"--backend {backend} runs an exported tokenizer: pass --export DIR (from `vidtok-kit export`)")
        model: Any = load(export_dir, backend=backend, device=device, dtype=precision)
    else:
        recipe, checkpoint = resolve_pretrained(pretrained, checkpoint, recipe, revision=revision)
        _warn_random(checkpoint)
        model = _load(recipe, checkpoint, device=device, precision=precision, compile_=compile_)
    provenance = model.provenance
    policy = _policy(model, fps, size, resize, start_s, end_s)
    if single:
        src = jobs[0][0]
        if info.enabled and not info.is_main:  # one file under torchrun: rank 0 encodes it
            return
        if not overwrite and _finished(src, output, provenance):
            click.echo(f"{src} -> {output} (exists, skipped; --overwrite re-encodes it)")
            return
        meta = encode_file(model, src, output, policy=policy, run=run, provenance=provenance, progress=_progress(progress, src.name))
        click.echo(f"{src} -> {output} ({meta.frame_count} frames)")
        return
    _encode_folder(model, jobs, output, info=info, fmt=fmt, shard_size=shard_size, overwrite=overwrite, policy=policy, run=run,
                   provenance=provenance, progress=progress)


def _encode_folder(model: Any, jobs: list[tuple[Path, Path]], output: Path, *, info: Any, fmt: str, shard_size: int,
                   overwrite: bool, policy: Any, run: Any, provenance: dict[str, Any], progress: bool | None) -> None:
    """Encode this rank's share of ``jobs`` (all of them for one process), then report the whole job on rank 0."""
    import attrs

    from vidtok_kit.errors import InputError, VidtokError
    from vidtok_kit.tokenize.pipeline import encode_file, encode_video
    from vidtok_kit.tokenize.ranks import assign_by_duration, durations_of, summary_line
    from vidtok_kit.train.distributed import all_gather_objects, init_distributed, shutdown

    if info.enabled:
        import torch

        init_distributed(info, torch.device("cpu"))  # gloo: only the summaries travel between ranks
        jobs = assign_by_duration(jobs, durations_of([src for src, _ in jobs]), info.world_size)[info.rank]
    writer = finished = None
    if fmt == "shards":
        from vidtok_kit.data.shards import ShardWriter, finished_sources

        finished = finished_sources(output)
        if overwrite and finished:
            raise InputError(f"{output}: holds finished shards; --overwrite with --format shards needs an empty folder")
        writer = ShardWriter(output, rank=info.rank, clips_per_shard=shard_size)
    failures: list[str] = []
    done = skipped = frames = 0
    try:
        for src, dst in jobs:
            rel = dst.relative_to(output).with_suffix(src.suffix).as_posix()
            try:
                if writer is not None and rel in finished:  # type: ignore[operator]
                    skipped += 1
                    click.echo(f"{src} -> {output} (in a finished shard, skipped)")
                    continue
                if writer is None and not overwrite and _finished(src, dst, provenance):
                    skipped += 1
                    click.echo(f"{src} -> {dst} (exists, skipped)")
                    continue
                bar = _progress(progress, src.name)
                if writer is not None:
                    tokens, meta = encode_video(model, src, policy=policy, run=run, provenance=provenance, progress=bar)
                    writer.add(rel, tokens, attrs.asdict(meta))
                else:
                    meta = encode_file(model, src, dst, policy=policy, run=run, provenance=provenance, progress=bar)
                done += 1
                frames += meta.frame_count
                click.echo(f"{src} -> {output if writer is not None else dst} ({meta.frame_count} frames)")
            except (VidtokError, OSError) as exc:  # an unwritable subfolder fails its files, not the batch
                line = str(exc) if isinstance(exc, VidtokError) else f"{dst}: cannot write ({exc.strerror or type(exc).__name__})"
                failures.append(line)
                click.echo(f"error: {line}", err=True)
        if writer is not None:
            writer.close()
        summaries = all_gather_objects({"encoded": done, "skipped": skipped, "failed": len(failures), "frames": frames,
                                        "files": len(jobs), "failures": failures})
    finally:
        if info.enabled:
            shutdown()
    if info.is_main:
        if writer is not None:
            from vidtok_kit.data.shards import write_index

            write_index(output)
        click.echo(summary_line(summaries))
    every_failure = [line for s in summaries for line in s["failures"]]
    if every_failure:
        if info.is_main:
            click.echo("failed:", err=True)
            for line in every_failure:
                click.echo(f"  {line}", err=True)
        click.get_current_context().exit(1)


@click.command("decode")
@click.argument("tokens", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output video (.mp4, H.264 yuv420p).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Weights [default: the checkpoint recorded in TOKENS].")
@pretrained_option
@click.option("--overwrite", is_flag=True, help="Replace an existing output video (default: refuse).")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="x264 quality (lower is better).")
@_run_options
def decode_command(tokens: Path, output: Path, checkpoint: Path | None, pretrained: str | None, revision: str | None, overwrite: bool,
                   crf: int, device: str, precision: str, compile_: str,
                   chunk_frames: int | None, max_memory: str | None, tile: int | None, progress: bool | None) -> None:
    """Decode a token file back into a video, with the recipe, frame rate and size it records."""
    from vidtok_kit.errors import InputError
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.loading import parse_device
    from vidtok_kit.tokenize.pipeline import decode_file
    from vidtok_kit.tokenize.tokens import read_token_meta

    check_output(output, kind="video", overwrite=overwrite, inputs=[tokens], what="-o")
    parse_device(device)
    meta = read_token_meta(tokens)
    _, checkpoint = resolve_pretrained(pretrained, checkpoint, meta.recipe, revision=revision)  # the recipe is the file's
    if checkpoint is None and meta.checkpoint:
        checkpoint = Path(meta.checkpoint)
        if not checkpoint.is_file():
            raise InputError(f"{tokens}: was made with checkpoint {meta.checkpoint}, which is not found; pass --checkpoint")
    if checkpoint is not None and not meta.checkpoint_sha256:
        raise InputError(f"{tokens}: was made by a randomly initialised model, not with a checkpoint")
    _warn_random(checkpoint)
    run, compile_ = _run(chunk_frames, max_memory, tile, precision, compile_)
    model = _load(None, checkpoint, device=device, precision=precision, compile_=compile_, stored_recipe=meta.recipe,
                  stored_in=tokens)
    provenance = model.provenance
    if provenance["checkpoint_sha256"] != meta.checkpoint_sha256:
        raise InputError(f"{tokens}: was made with checkpoint hash {meta.checkpoint_sha256}, {checkpoint} has {provenance['checkpoint_sha256']}")
    written = decode_file(model, tokens, output, run=run, crf=crf, progress=_progress(progress, tokens.name))
    click.echo(f"{tokens} -> {output} ({written.frame_count} frames at {meta.fps:g} fps)")


@click.command("reconstruct")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--recipe", type=click.Path(path_type=Path), default=None, help="Model recipe (may be omitted with a vidtok-kit checkpoint).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Weights; omitted = random init (warns).")
@pretrained_option
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output video (.mp4); never the input video.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output video (default: refuse).")
@click.option("--side-by-side", is_flag=True, help="Write the input (left) beside the reconstruction (right).")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="x264 quality (lower is better).")
@_video_options
@_run_options
def reconstruct_command(video: Path, recipe: Path | None, checkpoint: Path | None, pretrained: str | None, revision: str | None,
                        output: Path, overwrite: bool, side_by_side: bool, crf: int,
                        fps: float | None, size: int | None, resize: str | None, start_s: float | None, end_s: float | None,
                        device: str, precision: str, compile_: str, chunk_frames: int | None, max_memory: str | None, tile: int | None,
                        progress: bool | None) -> None:
    """Encode and decode VIDEO in one stream, write the result and print its PSNR and SSIM."""
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.loading import parse_device
    from vidtok_kit.tokenize.pipeline import reconstruct_file

    check_output(output, kind="video", overwrite=overwrite, inputs=[video], what="-o")
    parse_device(device)
    run, compile_ = _run(chunk_frames, max_memory, tile, precision, compile_)
    recipe, checkpoint = resolve_pretrained(pretrained, checkpoint, recipe, revision=revision)
    _warn_random(checkpoint)
    model = _load(recipe, checkpoint, device=device, precision=precision, compile_=compile_)
    policy = _policy(model, fps, size, resize, start_s, end_s)
    result = reconstruct_file(model, video, output, policy=policy, run=run, side_by_side=side_by_side, crf=crf,
                              progress=_progress(progress, video.name))
    click.echo(f"{video} -> {output}: PSNR {result.psnr:.2f} dB  SSIM {result.ssim:.4f}  ({result.frames} frames)")


commands = [encode_command, decode_command, reconstruct_command]
