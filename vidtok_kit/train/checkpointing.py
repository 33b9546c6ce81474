"""Training checkpoints: one directory per step, written atomically, the newest N kept.

Layout of ``RUN/checkpoints/step_00001000/``:

* ``model.safetensors`` + ``model.json``: the tokenizer through
  :func:`~vidtok_kit.convert.checkpoint.save_tokenizer`, so
  ``vidtok_kit.load(None, checkpoint=".../model.safetensors")`` works on any checkpoint;
* ``ema.safetensors`` + ``ema.json`` when EMA weights are kept;
* ``loss.safetensors``: learned log-variance, discriminator, LeCam averages;
* ``train_state.pt``: step, samples seen, optimizer and schedule states, every rank's RNG states,
  counters (read back with ``torch.load(weights_only=True)``: tensors and plain values only);
* ``meta.json``: written last, lists every file with its size and SHA-256.

The directory is assembled under a hidden ``.step_*.partial-*`` name, its files fsync'ed, then
renamed into place; a run killed mid-write leaves only a partial directory, which is ignored and
removed later. Resuming takes the newest directory whose files match ``meta.json`` (size and
content hash: a file damaged after the fact, even with its size intact, is caught before it is
parsed) and load; a damaged one is reported and the previous one used. ``train_state.pt`` is read
with ``weights_only=True``, so a pickle that would run code is refused like any damaged file.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from vidtok_kit.convert.checkpoint import file_sha256, load_torch_file, save_tokenizer
from vidtok_kit.errors import CheckpointError
from vidtok_kit.io.outputs import file_mode

__all__ = [
    "CHECKPOINT_DIR",
    "Checkpoint",
    "Checkpointer",
    "capture_rng",
    "load_checkpoint",
    "resolve_init_from",
    "restore_rng",
]

log = logging.getLogger("vidtok_kit.train")

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)$")
_PARTIAL = ".partial-"


@attrs.frozen(kw_only=True)
class Checkpoint:
    """What one checkpoint directory holds, loaded on the CPU."""

    path: Path
    step: int
    model: dict[str, Tensor]
    loss: dict[str, Tensor] | None
    ema: dict[str, Tensor] | None
    state: dict[str, Any] | None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpointer:
    """Saves and finds the checkpoints of one run directory (only rank 0 should save)."""

    def __init__(self, run_dir: str | Path, *, keep_last: int = 3) -> None:
        self.directory = Path(run_dir) / CHECKPOINT_DIR
        self.keep_last = keep_last
        #: why each checkpoint skipped by the last :meth:`latest` call was unreadable, newest first
        self.damaged: list[str] = []

    def complete(self) -> list[tuple[int, Path]]:
        """``(step, dir)`` of every finished checkpoint (``meta.json`` present), oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for d in self.directory.iterdir():
            m = _NAME.match(d.name)
            if m and d.is_dir() and (d / "meta.json").is_file():
                found.append((int(m.group(1)), d))
        return sorted(found)

    def save(
        self,
        step: int,
        *,
        model: Any,
        recipe: Any,
        loss: nn.Module | None = None,
        ema: Any = None,
        state: dict[str, Any] | None = None,
    ) -> Path:
        """Write checkpoint ``step`` atomically, then drop all but the newest ``keep_last``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"step_{step:08d}"
        tmp = self.directory / f".{final.name}{_PARTIAL}{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            save_tokenizer(model, recipe, tmp / "model.safetensors", extra={"step": str(step)})
            if ema is not None:
                save_tokenizer(ema, recipe, tmp / "ema.safetensors", extra={"step": str(step), "weights": "ema"})
            if loss is not None:
                tensors = {k: v.detach().contiguous().cpu() for k, v in loss.state_dict().items()}
                save_file(tensors, str(tmp / "loss.safetensors"))
            if state is not None:
                torch.save(state, tmp / "train_state.pt")
            for f in tmp.iterdir():  # safetensors writes 0600; checkpoints are shared like other outputs
                os.chmod(f, file_mode())
            files = {f.name: {"bytes": f.stat().st_size, "sha256": file_sha256(f, length=64)} for f in sorted(tmp.iterdir())}
            (tmp / "meta.json").write_text(json.dumps({"step": step, "files": files}, indent=2) + "\n")
            for f in tmp.iterdir():
                _fsync(f)
            if final.exists():  # re-saving a step (after falling back from a damaged checkpoint)
                stale = self.directory / f".{final.name}.stale-{secrets.token_hex(4)}"
                os.replace(final, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, final)
            _fsync(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune()
        return final

    def _prune(self) -> None:
        for _, old in self.complete()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for d in self.directory.iterdir():  # leftovers of runs killed mid-write
            if d.name.startswith(".step_") and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint that loads; damaged ones are skipped (and listed in :attr:`damaged`).

        Each skipped one is reported as a warning line once an older one loads; when none does,
        nothing is logged and the caller reports :attr:`damaged` in one error line.
        """
        self.damaged = []
        for _step, path in reversed(self.complete()):
            try:
                ckpt = load_checkpoint(path)
            except CheckpointError as exc:
                self.damaged.append(str(exc))
                continue
            for reason in self.damaged:
                log.warning("damaged checkpoint, trying the previous one (%s)", reason)
            return ckpt
        return None


def _check_file(path: Path, expected: Any) -> None:
    """``expected`` is ``{"bytes": n, "sha256": hex}`` (or a bare size, from older runs)."""
    size = expected if isinstance(expected, int) else int(expected["bytes"])
    actual = path.stat().st_size
    if actual != size:
        raise CheckpointError(f"{path}: {actual} bytes, meta.json says {size}")
    if isinstance(expected, dict) and file_sha256(path, length=64) != expected["sha256"]:
        raise CheckpointError(f"{path}: content differs from meta.json (sha256 mismatch)")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint directory, checking every file's size and hash against ``meta.json``.

    :raises CheckpointError: one line naming the first damaged file (missing, truncated, altered,
        not parseable, or a pickle ``weights_only`` refuses).
    """
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        step = int(meta["step"])
        for name, expected in meta["files"].items():
            _check_file(path / name, expected)
        model = load_file(str(path / "model.safetensors"))
        loss = load_file(str(path / "loss.safetensors")) if "loss.safetensors" in meta["files"] else None
        ema = load_file(str(path / "ema.safetensors")) if "ema.safetensors" in meta["files"] else None
        state = None
        if "train_state.pt" in meta["files"]:
            state = load_torch_file(path / "train_state.pt")
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, SafetensorError) as exc:
        first = (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0]
        raise CheckpointError(f"{path}: unreadable checkpoint ({first})") from None
    return Checkpoint(path=path, step=step, model=model, loss=loss, ema=ema, state=state)


def resolve_init_from(spec: str | Path) -> tuple[dict[str, Tensor], dict[str, Tensor] | None, str]:
    """``train.init_from`` -> (model tensors, loss tensors or None, description).

    Accepts a run directory (its newest checkpoint), a checkpoint directory, or a weights file
    (ours or an original VidTok checkpoint; the model only).
    """
    from vidtok_kit.convert.checkpoint import load_state_dict_file

    path = Path(spec)
    if path.is_dir():
        ckpt = load_checkpoint(path) if (path / "meta.json").is_file() else Checkpointer(path).latest()
        if ckpt is None:
            raise CheckpointError(f"train.init_from {spec}: no complete checkpoint under {path / CHECKPOINT_DIR}")
        return ckpt.model, ckpt.loss, str(ckpt.path)
    if path.is_file():
        return load_state_dict_file(path), None, str(path)
    raise CheckpointError(f"train.init_from {spec}: no such run directory, checkpoint directory or weights file")


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """This process's RNG states (torch, CUDA, Python, NumPy) in a ``weights_only``-loadable form."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device is not None and device.type == "cuda" else None,
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)), *np_state[2:]],
    }


def restore_rng(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
