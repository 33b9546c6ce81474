"""Two gloo processes under stock torchrun train in lock-step, and equal one process with their data."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidtok_kit.train import run
from vidtok_kit.train.distributed import DistInfo

TINY_FSQ = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "fsq_causal.toml"


def test_dist_info_reads_torchrun_variables_only() -> None:
    assert DistInfo.from_env({}) == DistInfo()
    info = DistInfo.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_PORT": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (1, 2, 1, False)
    with pytest.raises(Exception, match="LOCAL_RANK missing; launch with torchrun"):
        DistInfo.from_env({"RANK": "0", "WORLD_SIZE": "2"})


@pytest.mark.skipif(shutil.which("torchrun") is None or shutil.which("vidtok-kit") is None, reason="needs torchrun and the console script")
def test_two_process_torchrun_matches_one_process_with_the_same_batch(tmp_path, fast_sets, make_recipe) -> None:
    # FSQ is deterministic (no KL noise), so 2 ranks x batch 1 must equal 1 rank x batch 2: the
    # ranks' samples are the global positions a single process takes, and DDP averages gradients
    # of per-rank means. Step 3 adds the GAN (explicitly averaged discriminator gradients); its
    # BatchNorm sees per-rank batches, so equality is checked at step 1 and rank agreement at 2.
    sets = [*fast_sets, "train.steps=2", "train.save_every=1", "train.lr=1e-3", "train.loss.disc_start=2"]
    cmd = ["torchrun", "--standalone", "--nproc-per-node", "2", "--no-python", "vidtok-kit", "train", str(TINY_FSQ),
           "--out", str(tmp_path / "ddp"), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-3000:]
    # the trainer compares every rank's weights before saving and refuses when they differ
    assert "trained 2 steps" in proc.stdout

    run(make_recipe([*sets, "train.batch_size=2", "train.steps=1"], TINY_FSQ), tmp_path / "single", progress=False)
    diffs = []
    for name in ("model", "loss"):
        ddp = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_00000001" / f"{name}.safetensors"))
        one = load_file(str(tmp_path / "single" / "checkpoints" / "step_00000001" / f"{name}.safetensors"))
        assert ddp.keys() == one.keys()
        diffs += [(ddp[k].float() - one[k].float()).abs().flatten() for k in one]
    diff = torch.cat(diffs)
    # Adam's first update is ~lr * sign(grad): float-level gradient differences can only flip the
    # few elements whose gradient is ~0; unaveraged or misassigned gradients would move most of them
    assert float(diff.max()) <= 2.1e-3
    assert float((diff > 1e-6).float().mean()) < 0.01, float((diff > 1e-6).float().mean())
    assert (tmp_path / "ddp" / "checkpoints" / "step_00000002" / "meta.json").is_file()
