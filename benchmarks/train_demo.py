"""Does `vidtok-kit demo` learn a tokenizer? Held-out PSNR/SSIM after training, against two references.

The demo recipe (recipes/tiny/demo.toml) is trained on the built-in sample videos with bikes.mp4
held out, then every consecutive clip of bikes.mp4 is reconstructed by

* the trained tokenizer,
* the same model untrained (the weights training starts from: same seed, same recipe),
* a resampling baseline keeping at least as many numbers as the latent: subsample time by the
  model's temporal factor, area-downsample space (by the spatial factor, enlarged so 3 colour
  channels hold the latent's z channels' worth), then upsample (bilinear, linear in time).

The trained tokenizer must beat the baseline; the untrained model shows how much of that is
learned. Training wall time is printed too (it depends on the machine and its load).

Usage::

    python benchmarks/train_demo.py                      # trains into runs/bench_demo (resumes if there)
    python benchmarks/train_demo.py --set train.steps=300 --json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["main", "run"]

REPO = Path(__file__).resolve().parent.parent


def run(out: Path, overrides: list[str], *, progress: bool = True) -> dict[str, Any]:
    from vidtok_kit import build_model, load_recipe
    from vidtok_kit.train import run as train
    from vidtok_kit.train.heldout import compare_on_heldout

    recipe = load_recipe(REPO / "recipes" / "tiny" / "demo.toml", overrides=overrides)
    torch.manual_seed(recipe.train.seed)  # the Trainer's initial weights
    untrained = compare_on_heldout(recipe, build_model(recipe))
    start = time.perf_counter()
    trainer = train(recipe, out, resume=True, progress=progress)
    seconds = time.perf_counter() - start
    trained = compare_on_heldout(recipe, (trainer.ema.model if trainer.ema is not None else trainer.model).cpu())
    return {
        "recipe": "recipes/tiny/demo.toml", "overrides": overrides, "steps": trainer.step,
        "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
        "heldout_video": Path(trained["video"]).name, "clips": trained["clips"], "frames": trained["frames"],
        "size": trained["size"], "latent_numbers": trained["latent_numbers"], "baseline_numbers": trained["baseline_numbers"],
        "trained": trained["tokenizer"], "untrained": untrained["tokenizer"], "resampling_baseline": trained["resampling_baseline"],
        "beats_baseline": trained["tokenizer"]["psnr"] > trained["resampling_baseline"]["psnr"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_demo", help="run directory (resumed if present)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    res = run(args.out, args.overrides, progress=not args.json)
    text = json.dumps(res, indent=2)
    (args.out / "benchmark.json").write_text(text + "\n")
    if args.json:
        print(text)
        return res
    print(f"held-out {res['heldout_video']}: {res['clips']} clips of {res['frames']} frames at {res['size']}x{res['size']}, "
          f"{res['steps']} training steps in {res['train_seconds']:.0f} s ({res['threads']} threads)")
    print(f"{'method':<22}{'PSNR (dB)':>10}{'SSIM':>8}{'numbers/clip':>14}")
    for name, key, numbers in (("trained tokenizer", "trained", res["latent_numbers"]),
                               ("untrained tokenizer", "untrained", res["latent_numbers"]),
                               ("resampling baseline", "resampling_baseline", res["baseline_numbers"])):
        m = res[key]
        print(f"{name:<22}{m['psnr']:>10.2f}{m.get('ssim', float('nan')):>8.3f}{numbers:>14}")
    print("trained tokenizer beats the baseline" if res["beats_baseline"] else "trained tokenizer does NOT beat the baseline")
    return res


if __name__ == "__main__":
    main()
