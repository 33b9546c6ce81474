"""Streaming tokenization benchmark: peak memory and speed for a short and a long 256x256 video.

Memory must stay flat in video length: the 600-frame video should peak within ~1.3x of the
34-frame one, because both run the same chunk size and only tokens (1/256 of the pixels for a
4x8x8 model) accumulate. Each measurement runs in a fresh subprocess, so ``ru_maxrss`` (peak
resident set size) belongs to that run alone.

The model is a *small-but-not-tiny* VidTok: the released 4x8x8 causal v1.1 KL topology
(``channel_mult`` [1, 2, 4, 4], AlphaBlender time sampling, 2-D+1-D blocks, 3-D mid blocks with
attention) at 1/8 of the width (16 base channels, one block per level), randomly initialised,
so that 600 frames finish in a few minutes on 2 CPU cores. The long video is made by looping the
bundled sample clips (resized and centre-cropped to 256x256).

Usage (by hand; not part of the test suite)::

    python benchmarks/streaming.py                       # 34 and 600 frames, encode and decode
    python benchmarks/streaming.py --frames 34 120 --chunk-frames 16 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECIPE = """\
# 4x8x8 causal v1.1 KL tokenizer at 1/8 of VidTok's width: benchmark model
schema = 1
name = "bench_kl_causal_488_v1_1_small"

[model]
base_channels = 16
channel_mult = [1, 2, 4, 4]
num_res_blocks = 1
z_channels = 4
causal = true
version = "v1.1"

[model.spatial_sampler]
kind = "conv2d"

[model.temporal_sampler]
kind = "alphablender"

[model.block]
kind = "res2plus1d"

[model.fusion]
kind = "res3d"

[model.regularizer]
kind = "kl"
"""


def make_videos(folder: Path, lengths: list[int], size: int) -> dict[int, Path]:
    """Loop the sample clips into ``size x size`` videos of each length (written incrementally)."""
    from vidtok_kit.io import iter_video_chunks, sample_videos
    from vidtok_kit.io.writer import VideoWriter

    made = {}
    for n in lengths:
        path = folder / f"loop_{n}x{size}.mp4"
        made[n] = path
        if path.exists():
            continue
        written = 0
        with VideoWriter(path, 25.0, crf=18, preset="veryfast") as writer:
            while written < n:
                for clip in sample_videos():
                    for chunk in iter_video_chunks(clip, 16, size=size):
                        take = chunk[:, : n - written]
                        writer.write(take)
                        written += take.shape[1]
                        if written >= n:
                            break
                    if written >= n:
                        break
    return made


def worker(stage: str, video: str, tokens: str, recipe: str, chunk: int | None, max_memory: str | None) -> dict[str, Any]:
    """One measured run in this (fresh) process: encode ``video`` -> ``tokens`` or decode back."""
    import torch

    from vidtok_kit.io import ClipPolicy
    from vidtok_kit.pluginmanager import default_registry
    from vidtok_kit.stream import parse_memory
    from vidtok_kit.tokenize.pipeline import RunOptions, decode_file, encode_file, load_model

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))
    model, provenance = load_model(Path(recipe), None, registry=default_registry())
    run = RunOptions(chunk_frames=chunk or None, max_memory=parse_memory(max_memory) if max_memory else None)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if stage == "encode":
        policy = ClipPolicy(multiple=model.spatial_factor, resize="none")
        meta = encode_file(model, video, tokens, policy=policy, run=run, provenance=provenance)
    else:
        out = Path(tokens).with_suffix(".decoded.mp4")
        meta = decode_file(model, tokens, out, run=run)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "stage": stage,
        "frames": meta.frame_count,
        "seconds": seconds,
        "fps": meta.frame_count / seconds,
        "peak_rss_mib": peak_kb / 1024,
        "rss_before_mib": base_kb / 1024,
        "threads": torch.get_num_threads(),
    }


def measure(stage: str, video: Path, tokens: Path, recipe: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", stage, str(video), str(tokens), str(recipe)]
    if args.chunk_frames:
        cmd += ["--chunk-frames", str(args.chunk_frames)]
    if args.max_memory:
        cmd += ["--max-memory", args.max_memory]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{stage} of {video} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[34, 600], help="video lengths (first is the baseline)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--chunk-frames", type=int, default=16, help="frames per step; 0 = from --max-memory")
    parser.add_argument("--max-memory", default=None, help="budget that picks the chunk size [default: the engine's 4G]")
    parser.add_argument("--workdir", type=Path, default=None, help="keep videos and tokens here")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=4, metavar=("STAGE", "VIDEO", "TOKENS", "RECIPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.chunk_frames, args.max_memory)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        recipe = folder / "bench_recipe.toml"
        recipe.write_text(RECIPE)
        videos = make_videos(folder, args.frames, args.size)
        rows = []
        for n in args.frames:
            tokens = folder / f"loop_{n}.safetensors"
            for stage in ("encode", "decode"):
                row = measure(stage, videos[n], tokens, recipe, args)
                rows.append(row)
                if not args.json:
                    print(f"{n:>5} frames  {stage:<6}  {row['seconds']:8.1f} s  {row['fps']:6.2f} fps  "
                          f"peak RSS {row['peak_rss_mib']:7.0f} MiB (after model load {row['rss_before_mib']:.0f} MiB)", flush=True)
        base, last = args.frames[0], args.frames[-1]
        ratios = {}
        for stage in ("encode", "decode"):
            peak = {r["frames"]: r["peak_rss_mib"] for r in rows if r["stage"] == stage}
            ratios[stage] = peak[last] / peak[base]
        if args.json:
            print(json.dumps({"size": args.size, "rows": rows, "peak_ratio": ratios}, indent=2))
        else:
            for stage, ratio in ratios.items():
                verdict = "ok" if ratio <= 1.3 else "ABOVE 1.3x target"
                print(f"peak RSS {stage}: {last} frames / {base} frames = {ratio:.2f}x ({verdict})")


if __name__ == "__main__":
    main()
