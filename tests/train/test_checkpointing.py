"""Checkpoints survive a process killed mid-write; a damaged newest one falls back to the previous."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vidtok_kit.train import run
from vidtok_kit.train.checkpointing import Checkpointer

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "kl_causal.toml"

# Kills its own process (SIGKILL: no cleanup, no finally) right after the third checkpoint's
# loss.safetensors is written: model files exist, train_state.pt and meta.json do not.
_KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from vidtok_kit import load_recipe
    from vidtok_kit.train import checkpointing, run

    real = checkpointing.save_file
    def save_then_die(tensors, path, *args, **kwargs):
        real(tensors, path, *args, **kwargs)
        if ".step_00000003" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
    checkpointing.save_file = save_then_die
    run(load_recipe(sys.argv[1], overrides=sys.argv[3:]), sys.argv[2], progress=False)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_run_killed_mid_checkpoint_resumes_from_last_complete_one(tmp_path, fast_sets, make_recipe) -> None:
    sets = [*fast_sets, "train.steps=4", "train.save_every=1"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, str(TINY), str(tmp_path / "run"), *sets],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpts = tmp_path / "run" / "checkpoints"
    partial = [d.name for d in ckpts.iterdir() if d.name.startswith(".step_00000003")]
    assert partial, "the kill should have left a partial checkpoint behind"
    assert [s for s, _ in Checkpointer(tmp_path / "run").complete()] == [1, 2]

    resumed = run(make_recipe(sets), tmp_path / "run", resume=True, progress=False)
    assert resumed.step == 4
    assert [s for s, _ in Checkpointer(tmp_path / "run").complete()] == [2, 3, 4]  # keep_last = 3
    assert not [d for d in ckpts.iterdir() if d.name.startswith(".")]
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]

    # a newest checkpoint damaged after the fact (truncated file) is reported and skipped
    model = ckpts / "step_00000004" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    latest = Checkpointer(tmp_path / "run").latest()
    assert latest is not None and latest.step == 3
