"""Inference speed and memory: our tokenizer vs diffusers' ``AutoencoderVidTok``, same weights, same input.

    python benchmarks/inference.py --shape 17,128,128
    python benchmarks/inference.py --shape 17,128,128 --shape 17,256,256 --runs 3

For each recipe (4x8x8 KL and FSQ, causal v1.1: diffusers implements v1.1) and shape, every
(implementation, op) runs in its own subprocess so its peak memory can be read alone: peak RSS
growth (``VmHWM`` reset through ``/proc/self/clear_refs`` after setup) over the first call, and
the median time of ``--runs`` calls after one warm-up. Implementations:

* ``diffusers``: ``AutoencoderVidTok.encode(x)`` (KL: posterior mode) / ``.decode(z)``, fp32;
* ``ours``: ``VideoTokenizer.encode(x).latent`` / ``.decode(z)`` under ``no_grad`` (reference path);
* ``fast``: :mod:`vidtok_kit.fast` fp32 (inference mode, channels-last, chunked time);
* ``fast-bf16``: the same with a bf16 model copy.

Weights: a random-init diffusers model with every parameter perturbed (as the parity tests do,
so the zero-initialised temporal convs are active), loaded into ours through the original key
map. Decoding starts from diffusers' fp32 latent. Outputs are compared with diffusers' (max abs
difference) and bf16 reconstructions with fp32 ones (PSNR). Multiply-accumulates are counted on
a meta-device run of our model and set against the matrix-multiply peak measured in this run.
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

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {
    "kl": ROOT / "recipes/vidtok/vidtok_kl_causal_488_4chn_v1_1.toml",
    "fsq": ROOT / "recipes/vidtok/vidtok_fsq_causal_488_32768_v1_1.toml",
}
IMPLS = ("diffusers", "ours", "fast", "fast-bf16")


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


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> None:
    reg, impl, op = args.recipe, args.impl, args.op
    t, h, w = args.shape
    theirs = _diffusers_model(reg)
    if impl == "diffusers":
        if op == "encode":
            def call(x):
                out = theirs.encode(x)
                return out.latent_dist.mode() if reg == "kl" else out[0]
        else:
            def call(z):
                return theirs.decode(z)
        ctx = torch.no_grad
    else:
        ours = _our_model(reg, theirs.state_dict())
        del theirs
        from vidtok_kit import fast

        if impl == "ours":
            ctx = torch.no_grad
            call = (lambda x: ours.encode(x).latent) if op == "encode" else (lambda z: ours.decode(z))
        else:
            model = fast.for_inference(ours, torch.bfloat16 if impl == "fast-bf16" else None)
            if model is not ours:
                del ours
            ctx = torch.inference_mode
            call = (lambda x: fast.encode(model, x)) if op == "encode" else (lambda z: fast.decode(model, z))
    if op == "encode":
        torch.manual_seed(1)
        inp = torch.rand(1, 3, t, h, w) * 2 - 1
    else:
        inp = torch.load(args.latent)
    base = _rss_kib("VmRSS")
    exact = _reset_peak()
    with ctx():
        start = time.perf_counter()
        out = call(inp)
        first = time.perf_counter() - start
    peak = _rss_kib("VmHWM") if exact else _rss_kib("VmHWM")
    times = []
    for _ in range(args.runs):
        with ctx():
            start = time.perf_counter()
            call(inp)
            times.append(time.perf_counter() - start)
    torch.save(out.float().contiguous(), args.out)
    print(json.dumps({"time": statistics.median(times) if times else first, "first": first,
                      "peak_mib": (peak - base) / 1024, "exact_peak": exact}))


# -- parent ---------------------------------------------------------------------------------------


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Best multiply-accumulates per second of an n x n matmul in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return n**3 / best


def count_macs(reg: str, shape: tuple[int, int, int]) -> dict[str, float]:
    """Multiply-accumulates of our encode and decode, counted on the meta device (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    from vidtok_kit import build_model

    model = build_model(RECIPES[reg], device="meta").eval()
    x = torch.empty(1, 3, *shape, device="meta")
    macs = {}
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            h = model.encoder(model.pad_frames(x))
        macs["encode"] = counter.get_total_flops() / 2
        z = torch.empty(1, model.config.z_channels, h.shape[2], *h.shape[3:], device="meta")
        with FlopCounterMode(display=False) as counter:
            model.decoder(z)
        macs["decode"] = counter.get_total_flops() / 2
    return macs


def run_child(reg: str, shape, impl: str, op: str, runs: int, tmp: Path, latent: Path | None) -> dict:
    out = tmp / f"{reg}-{impl}-{op}.pt"
    cmd = [sys.executable, __file__, "--child", "--recipe", reg, "--impl", impl, "--op", op,
           "--shape", ",".join(map(str, shape)), "--runs", str(runs), "--out", str(out)]
    if latent is not None:
        cmd += ["--latent", str(latent)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode:
        raise RuntimeError(f"{impl} {op} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["out"] = out
    return res


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).pow(2).mean().item()
    return 10 * math.log10(4.0 / mse) if mse > 0 else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", help="T,H,W (repeatable); default 17,128,128")
    parser.add_argument("--recipe", action="append", choices=sorted(RECIPES), help="default: kl and fsq")
    parser.add_argument("--impl", action="append", choices=IMPLS, help="default: all")
    parser.add_argument("--runs", type=int, default=3, help="timed calls after the first (median)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--op", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--latent", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.recipe, args.impl = args.recipe[0], args.impl[0]
        args.shape = tuple(int(s) for s in args.shape[0].split(","))
        return child(args)
    shapes = [tuple(int(s) for s in s.split(",")) for s in (args.shape or ["17,128,128"])]
    recipes = args.recipe or ["kl", "fsq"]
    impls = args.impl or list(IMPLS)
    if "diffusers" not in impls:
        impls.insert(0, "diffusers")
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak: "
          f"fp32 {peak32 / 1e9:.1f} GMAC/s, bf16 {peak16 / 1e9:.1f} GMAC/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for reg in recipes:
            for shape in shapes:
                macs = count_macs(reg, shape)
                res: dict[tuple[str, str], dict] = {}
                for impl in impls:
                    res[impl, "encode"] = run_child(reg, shape, impl, "encode", args.runs, tmp, None)
                latent = res["diffusers", "encode"]["out"]
                for impl in impls:
                    res[impl, "decode"] = run_child(reg, shape, impl, "decode", args.runs, tmp, latent)
                ref = {op: torch.load(res["diffusers", op]["out"]) for op in ("encode", "decode")}
                fp32_recon = torch.load(res["fast", "decode"]["out"]) if "fast" in impls else ref["decode"]
                for impl in impls:
                    for op in ("encode", "decode"):
                        r = res[impl, op]
                        out = torch.load(r["out"])
                        base = res["diffusers", op]
                        peak = peak16 if impl.endswith("bf16") else peak32
                        if out.shape == ref[op].shape:
                            note = f"max|diff| {(out - ref[op]).abs().max().item():.1e}"
                        else:  # diffusers' v1.1 encode drops the first latent's padding group differently
                            note = f"shape {tuple(out.shape)} vs diffusers {tuple(ref[op].shape)}"
                        if impl.endswith("bf16") and op == "decode":
                            note += f", PSNR vs fp32 {psnr(out, fp32_recon):.1f} dB"
                        rows.append((reg, "x".join(map(str, shape)), op, impl, r["time"], base["time"] / r["time"],
                                     r["peak_mib"], r["peak_mib"] / max(base["peak_mib"], 1e-9),
                                     macs[op] / r["time"] / peak, note))
                        print(f"{rows[-1][0]:3} {rows[-1][1]:10} {op:6} {impl:9} {r['time']:7.2f} s  x{rows[-1][5]:4.2f}  "
                              f"peak {r['peak_mib']:7.0f} MiB ({rows[-1][7]:.2f}x)  {100 * rows[-1][8]:4.1f}% of peak  {note}",
                              flush=True)
    print("\n| recipe | shape | op | impl | time (s) | speed-up vs diffusers | peak MiB | memory vs diffusers | MAC/s vs matmul peak | check |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.2f} | {r[5]:.2f}x | {r[6]:.0f} | {r[7]:.2f}x | {100 * r[8]:.1f}% | {r[9]} |")


if __name__ == "__main__":
    main()
