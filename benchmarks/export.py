"""Export wall time and encode / decode speed of the exported graphs against PyTorch, in one run.

Backends timed on the same input, round by round (median of ``--repeat`` rounds after two warm-up runs each):

* PyTorch reference: the model as built (reference arithmetic, channels-first, eager);
* PyTorch eager fast: ``vidtok_kit.load(recipe, checkpoint, compile="off")`` (the exact fast
  forms, channels-last, no compilation): the bar ONNX Runtime has to meet;
* ONNX Runtime fp32 on the CPU (the session options of :func:`vidtok_kit.export.onnx.ort_session`);
* optionally PyTorch bf16 (``--bf16``), and where a CUDA GPU is visible: PyTorch on the GPU, ONNX
  Runtime's CUDA provider (if onnxruntime-gpu is installed) and TensorRT engines (if tensorrt is
  installed; ``--precision``), and with ``--precision fp16`` the export's fp16 ONNX graphs on
  ONNX Runtime's CUDA provider.

The model is exported once into a temporary directory at exactly the benchmark shape (so a
TensorRT profile fits it), with the usual parity check; its wall time is printed. Ratios are
speed-ups over the eager fast path and over the reference (2.0 means twice as fast).

Usage::

    python benchmarks/export.py                     # released FSQ 4x8x8 model, 1x3x17x128x128, CPU
    python benchmarks/export.py --checkpoint ck.ckpt --threads 2
    python benchmarks/export.py --recipe recipes/tiny/kl_causal.toml --shape 9x32x32 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["main", "run"]

REPO = Path(__file__).resolve().parent.parent


def _time_rounds(calls: list[tuple[str, Callable[[], Any], bool]], repeat: int) -> dict[str, float]:
    """Median seconds of every call, timed round by round (all calls once per round).

    Round by round, so that a neighbour's load or a drift of the shared machine's clock hits every
    backend alike: timed one backend after another, PyTorch's decode drifted from 16.3 to 13.7 s
    within a run. Two warm-up calls each first: ONNX Runtime records its memory pattern on the
    first run and allocates (page-faults) the planned block on the second (measured: decode 17.5,
    17.5, then 14.3 s); PyTorch's kept heap and oneDNN's primitive cache settle on the first.
    """
    for _, fn, _ in calls:
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name, _, _ in calls}
    for _ in range(repeat):
        for name, fn, cuda in calls:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def run(recipe: str | Path, *, shape: tuple[int, int, int], batch: int = 1, repeat: int = 3,
        checkpoint: str | Path | None = None, precision: str = "fp16", bf16: bool = False,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every available backend; returns {"rows": [{backend, encode_s, decode_s, encode_x, decode_x, ...}], ...}.

    ``encode_x`` / ``decode_x``: speed-up over the PyTorch eager fast path; ``*_vs_reference``: over the reference.
    """
    from vidtok_kit.export.deps import MissingDependencyError, require_tensorrt
    from vidtok_kit.export.pipeline import export_tokenizer

    import vidtok_kit
    from vidtok_kit.loading import load_model

    t, h, w = shape
    model = load_model(recipe, checkpoint)[0]
    fast = vidtok_kit.load(recipe, checkpoint, compile="off")
    x = torch.rand(batch, model.config.in_channels, t, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        latent = model.encode(x).latent
    cuda = torch.cuda.is_available()
    trt_ok = False
    if cuda:
        try:
            require_tensorrt()
            trt_ok = True
        except MissingDependencyError as exc:
            log(f"TensorRT skipped: {exc}")
    backends: list[tuple[str, Callable[[], Any], Callable[[], Any], bool]] = []

    def add(name: str, enc: Callable[[], Any], dec: Callable[[], Any], on_cuda: bool = False) -> None:
        backends.append((name, enc, dec, on_cuda))

    def bf16_call(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
        def call() -> Any:
            with torch.autocast(device, dtype=torch.bfloat16):
                return fn()

        return call

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export_tokenizer(recipe, Path(tmp) / "export", checkpoint=checkpoint, shapes=f"{t}x{h}x{w}",
                         batch=(batch, batch, batch), stream_chunk=None, trt=trt_ok,
                         precision=precision if (trt_ok or (cuda and precision == "fp16")) else "fp32", log=lambda s: None)
        export_s = time.perf_counter() - start
        log(f"export (+ parity at {t}x{h}x{w}) took {export_s:.1f} s")
        ort_cpu = vidtok_kit.load(Path(tmp) / "export", backend="onnx", threads=torch.get_num_threads())
        add("pytorch-cpu-eager-fast", lambda: fast.encode(x), lambda: fast.decode(latent))
        add("onnxruntime-cpu-fp32", lambda: ort_cpu.encode(x), lambda: ort_cpu.decode(latent))
        add("pytorch-cpu-reference", lambda: model.encode(x), lambda: model.decode(latent))
        if bf16:
            add("pytorch-cpu-bf16", bf16_call(lambda: model.encode(x), "cpu"), bf16_call(lambda: model.decode(latent), "cpu"))
        if cuda:
            model_gpu, xg, zg = model.cuda(), x.cuda(), latent.cuda()
            add("pytorch-cuda-fp32", lambda: model_gpu.encode(xg), lambda: model_gpu.decode(zg), True)
            add("pytorch-cuda-bf16", bf16_call(lambda: model_gpu.encode(xg), "cuda"),
                bf16_call(lambda: model_gpu.decode(zg), "cuda"), True)
            try:
                ort_gpu = vidtok_kit.load(Path(tmp) / "export", backend="onnx", device="cuda")
                add("onnxruntime-cuda-fp32", lambda: ort_gpu.encode(xg), lambda: ort_gpu.decode(zg), True)
                if precision == "fp16":  # the export's fp16 graphs (--precision fp16)
                    ort_half = vidtok_kit.load(Path(tmp) / "export", backend="onnx", device="cuda", dtype="fp16")
                    add("onnxruntime-cuda-fp16", lambda: ort_half.encode(xg), lambda: ort_half.decode(zg), True)
            except Exception as exc:  # no CUDA provider in this onnxruntime install
                log(f"onnxruntime-cuda skipped: {str(exc).splitlines()[0]}")
            if trt_ok:
                engine = vidtok_kit.load(Path(tmp) / "export", backend="tensorrt")
                add(f"tensorrt-{precision}", lambda: engine.encode(xg), lambda: engine.decode(zg), True)
        calls = [(f"{name} {part}", fn, on_cuda) for name, enc, dec, on_cuda in backends
                 for part, fn in (("encode", enc), ("decode", dec))]
        with torch.no_grad():
            seconds = _time_rounds(calls, repeat)
    rows: list[dict[str, Any]] = []
    for name, *_ in backends:
        rows.append({"backend": name, "encode_s": seconds[f"{name} encode"], "decode_s": seconds[f"{name} decode"]})
        log(f"{name:<28} encode {rows[-1]['encode_s']:8.3f} s   decode {rows[-1]['decode_s']:8.3f} s")
    fast_row = rows[0]
    ref_row = next(r for r in rows if r["backend"] == "pytorch-cpu-reference")
    for row in rows:
        row["encode_x"] = fast_row["encode_s"] / row["encode_s"]
        row["decode_x"] = fast_row["decode_s"] / row["decode_s"]
        row["encode_vs_reference"] = ref_row["encode_s"] / row["encode_s"]
        row["decode_vs_reference"] = ref_row["decode_s"] / row["decode_s"]
    return {
        "recipe": str(recipe), "input": [batch, model.config.in_channels, t, h, w], "repeat": repeat,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "export_s": export_s, "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "vidtok" / "vidtok_fsq_causal_488_262144.toml"))
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--shape", default="17x128x128", help="TxHxW")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also time PyTorch bf16 autocast on the CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime CPU threads")
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"], help="TensorRT engines")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t, h, w = (int(v) for v in args.shape.split("x"))
    result = run(args.recipe, shape=(t, h, w), batch=args.batch, repeat=args.repeat, checkpoint=args.checkpoint,
                 precision=args.precision, bf16=args.bf16, log=(lambda s: None) if args.json else print)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"\nexport wall time {result['export_s']:.1f} s; input {result['input']}, {result['threads']} threads")
    print("speed-up over the PyTorch eager fast path (and over the reference model):")
    for row in result["rows"]:
        print(f"  {row['backend']:<28} encode x{row['encode_x']:5.2f} (x{row['encode_vs_reference']:5.2f})"
              f"   decode x{row['decode_x']:5.2f} (x{row['decode_vs_reference']:5.2f})")

if __name__ == "__main__":
    main()
