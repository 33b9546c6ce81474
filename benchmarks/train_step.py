"""A full-size training step: eager reference vs the fast step, gradient agreement, peak memory.

Run by hand (minutes on a small CPU)::

    python benchmarks/train_step.py [--recipe R] [--frames 17] [--size 64] [--rounds 4]

One step = autoencoder forward + backward of the L1 reconstruction loss (batch 1, fp32, CPU,
KL noise from a fixed seed), on a released-size model with perturbed weights (zero-initialised
temporal convs would otherwise hide their inputs). Variants, interleaved round by round in one
process:

* ``reference``: the plain training step (reference arithmetic, channels-first, eager);
* ``fast``: ``train.arithmetic = "fast"`` + ``train.channels_last = true``, eager;
* ``fast+compile``: the same with ``train.compile = true`` (compiled on a warm-up step, timed apart).

Every variant goes through :func:`vidtok_kit.train.speed.prepare_for_training`, as the trainer
does. The trainer also applies :func:`vidtok_kit.heap.keep_freed_memory` on the CPU (a process
setting: freed activations are reused instead of being unmapped and faulted in again), so the
variants are timed twice, each time in its own child process: with the C library's default heap
(``VIDTOK_KIT_HEAP=system``: the training step as it was before these options existed) and with
the trainer's heap setting. The speed-ups are printed against both reference rows, so the part due
to the heap and the part due to the arithmetic can be told apart.

Gradients are compared per tensor as max |g - g_ref| / max |g_ref|, skipping tensors whose
true gradient is ~0 (attention key biases: softmax is shift-invariant, so their gradient is
mathematically zero and only rounding noise is left). Peak memory is measured in child processes
(peak RSS, ``VmHWM``), with the trainer's heap setting, once without and once with
``train.activation_checkpointing``: the whole process, and the step's own increment above the RSS
just before it (weights, inputs and the interpreter are common to both).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from vidtok_kit import build_model
from vidtok_kit.heap import HEAP_ENV, keep_freed_memory
from vidtok_kit.testing import perturb_parameters
from vidtok_kit.train.speed import prepare_for_training

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "vidtok" / "vidtok_kl_causal_488_4chn_v1_1.toml"
VARIANTS = {
    "reference": {},
    "fast": {"arithmetic": "fast", "channels_last": True},
    "fast+compile": {"arithmetic": "fast", "channels_last": True, "compile": True},
    "fast+ac": {"arithmetic": "fast", "channels_last": True, "activation_checkpointing": True},
    "reference+ac": {"activation_checkpointing": True},
}


def make_model(recipe: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(recipe)
    with torch.no_grad():
        perturb_parameters(model, scale=0.02)
    return model.train()


def make_clip(frames: int, size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, frames, size, size, generator=gen) * 2 - 1


def step(model: torch.nn.Module, x: torch.Tensor) -> float:
    """One forward + backward of the L1 loss; returns the seconds it took."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(2)  # the same KL noise in every variant
    start = time.perf_counter()
    out = model(x, sample=True)
    loss = (out.recon - x).abs().mean()
    loss.backward()
    return time.perf_counter() - start


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def compare(ref: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> dict[str, object]:
    """Worst per-tensor relative max difference, over tensors whose gradient is not ~0."""
    scale = statistics.median(float(g.abs().max()) for g in ref.values())
    worst, name, skipped = 0.0, "", []
    for key, g in ref.items():
        top = float(g.abs().max())
        if top <= 1e-6 * scale:  # mathematically zero (attention key biases): rounding noise only
            skipped.append(key)
            continue
        rel = float((other[key] - g).abs().max()) / top
        if rel > worst:
            worst, name = rel, key
    return {"max_rel_diff": worst, "worst_tensor": name, "skipped_zero_grad": skipped, "compared": len(ref) - len(skipped)}


def memory_child(args: argparse.Namespace) -> None:
    """One step of ``args.memory_child``'s variant; prints peak RSS figures as JSON."""
    keep_freed_memory()  # as the trainer does on the CPU
    model = make_model(args.recipe)
    prepare_for_training(model, **VARIANTS[args.memory_child])
    x = make_clip(args.frames, args.size)
    before = _status_kb("VmRSS")
    seconds = step(model, x)
    peak = _status_kb("VmHWM")
    print(json.dumps({"variant": args.memory_child, "peak_rss_mb": peak / 1024, "step_increment_mb": (peak - before) / 1024,
                      "step_s": seconds}))


def timing_child(args: argparse.Namespace) -> None:
    """Warm-up, gradients and interleaved timed rounds of every variant; prints JSON."""
    heap_kept = keep_freed_memory()  # declined when the parent set VIDTOK_KIT_HEAP=system
    base = make_model(args.recipe)
    x = make_clip(args.frames, args.size)
    names = args.variants.split(",")
    models = {}
    for name in names:
        models[name] = model = copy.deepcopy(base)
        prepare_for_training(model, **VARIANTS[name])
    reference_grads, agreement = None, {}
    for name in names:  # warm-up (compiles), and the gradients of one step
        seconds = step(models[name], x)
        print(f"  warm-up {name}: {seconds:.1f}s", file=sys.stderr, flush=True)
        g = grads(models[name])
        if reference_grads is None:
            reference_grads = g
        else:
            agreement[name] = compare(reference_grads, g)
        models[name].zero_grad(set_to_none=True)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(step(models[name], x))
            print(f"  round {r} {name}: {times[name][-1]:.1f}s", file=sys.stderr, flush=True)
    print(json.dumps({"heap_kept": heap_kept, "times": times, "agreement": agreement}))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4, help="timed steps per variant, interleaved")
    parser.add_argument("--variants", default="reference,fast,fast+compile")
    parser.add_argument("--memory", default="fast,fast+ac", help="variants whose peak memory is measured ('' = none)")
    parser.add_argument("--memory-child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--timing-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    if args.timing_child:
        timing_child(args)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, clip 1x3x{args.frames}x{args.size}x{args.size} fp32")
    common = ["--recipe", str(args.recipe), "--frames", str(args.frames), "--size", str(args.size)]
    runs = {}
    for heap in ("system", "kept"):
        print(f"heap {heap}:", flush=True)
        env = {**os.environ, HEAP_ENV: heap}
        cmd = [sys.executable, __file__, "--timing-child", "--rounds", str(args.rounds), "--variants", args.variants, *common]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
        runs[heap] = json.loads(out.strip().splitlines()[-1])
        if runs[heap]["heap_kept"] != (heap == "kept"):
            raise RuntimeError(f"the heap setting did not take effect as asked ({heap})")
    names = args.variants.split(",")
    # on a shared machine other load only ever adds time: the fastest round is the least disturbed
    print(f"\nstep time: fastest round (least disturbed) and median; speed-up vs {names[0]} with the default heap "
          f"(the step as it was) and vs {names[0]} with the same heap")
    for heap, run in runs.items():
        times = run["times"]
        ref_min, ref_med = min(runs["system"]["times"][names[0]]), statistics.median(runs["system"]["times"][names[0]])
        same_min, same_med = min(times[names[0]]), statistics.median(times[names[0]])
        for name in names:
            fastest, med = min(times[name]), statistics.median(times[name])
            print(f"  heap {heap:6s} {name:14s} min {fastest:7.2f}s x{ref_min / fastest:.2f} (x{same_min / fastest:.2f})   "
                  f"median {med:7.2f}s x{ref_med / med:.2f} (x{same_med / med:.2f})   {[round(t, 1) for t in times[name]]}")
    print("\ngradient agreement vs", names[0], "(max |g - g_ref| / max |g_ref| per tensor, worst tensor)")
    for heap, run in runs.items():
        for name, a in run["agreement"].items():
            print(f"  heap {heap:6s} {name:14s} {a['max_rel_diff']:.2e} ({a['worst_tensor']}); {a['compared']} tensors, "
                  f"skipped as ~0: {a['skipped_zero_grad']}")
    if args.memory:
        print("\npeak memory of one step (child processes)")
        results = {}
        for name in args.memory.split(","):
            cmd = [sys.executable, __file__, "--memory-child", name, "--recipe", str(args.recipe),
                   "--frames", str(args.frames), "--size", str(args.size)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[name] = r = json.loads(out.strip().splitlines()[-1])
            print(f"  {name:14s} peak RSS {r['peak_rss_mb']:8.0f} MB, step increment {r['step_increment_mb']:8.0f} MB, step {r['step_s']:.1f}s", flush=True)
        plain, ckpt = results.get("fast"), results.get("fast+ac")
        if plain and ckpt:
            print(f"  activation checkpointing: peak RSS x{ckpt['peak_rss_mb'] / plain['peak_rss_mb']:.2f}, "
                  f"step increment x{ckpt['step_increment_mb'] / plain['step_increment_mb']:.2f}")


if __name__ == "__main__":
    main()
