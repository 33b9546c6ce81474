"""Declarative key maps between our state-dict layout and the original VidTok checkpoints.

Ours keeps each resolution-level block in one module (``down.{i}.block.{j}.spatial`` +
``.temporal``) and the temporal samplers beside the spatial ones (``down.{i}.time_downsample``);
the original splits them into ``down`` / ``down_temporal`` trees. Non-causal originals also lack the
``.conv`` wrapper level of causal convolutions. Each table is (regex on our key, replacement),
first match wins; keys matching nothing are the same in both layouts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["IGNORED_ORIGINAL_KEYS", "NONCAUSAL_UNWRAP", "OURS_TO_ORIGINAL", "original_key", "original_keys"]

#: our key -> original key, for every model
OURS_TO_ORIGINAL: tuple[tuple[str, str], ...] = (
    (r"^(encoder\.down|decoder\.up)\.(\d+)\.block\.(\d+)\.spatial\.(.+)$", r"\1.\2.block.\3.\4"),
    (r"^encoder\.down\.(\d+)\.block\.(\d+)\.temporal\.(.+)$", r"encoder.down_temporal.\1.block.\2.\3"),
    (r"^decoder\.up\.(\d+)\.block\.(\d+)\.temporal\.(.+)$", r"decoder.up_temporal.\1.block.\2.\3"),
    (r"^encoder\.down\.(\d+)\.time_downsample\.(.+)$", r"encoder.down_temporal.\1.downsample.\2"),
    (r"^decoder\.up\.(\d+)\.time_upsample\.(.+)$", r"decoder.up_temporal.\1.upsample.\2"),
)

#: applied after :data:`OURS_TO_ORIGINAL` for non-causal models: plain Conv3d/Conv1d, no ``.conv`` level
NONCAUSAL_UNWRAP: tuple[tuple[str, str], ...] = (
    (r"^(.+\.(?:conv_in|conv_out|conv1|conv2|q|k|v|proj_out|nin_shortcut))\.conv\.(weight|bias)$", r"\1.\2"),
    (r"^(.+_temporal\.\d+\.(?:downsample|upsample))\.conv\.conv\.(weight|bias)$", r"\1.conv.\2"),
)

#: original keys that are not model weights: training loss (LPIPS, discriminator, logvar) and EMA copies
IGNORED_ORIGINAL_KEYS: tuple[str, ...] = (r"^loss\.", r"^model_ema\.")


def _apply(table: Iterable[tuple[str, str]], key: str) -> str:
    for pattern, replacement in table:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return key


def original_key(key: str, *, causal: bool) -> str:
    """The original checkpoint's name for our ``key``."""
    key = _apply(OURS_TO_ORIGINAL, key)
    return key if causal else _apply(NONCAUSAL_UNWRAP, key)


def original_keys(ours: Iterable[str], *, causal: bool) -> dict[str, str]:
    """original key -> our key, for all of ``ours``; a collision would be a table bug."""
    mapping: dict[str, str] = {}
    for key in ours:
        orig = original_key(key, causal=causal)
        if orig in mapping:
            raise AssertionError(f"key map collision: {mapping[orig]!r} and {key!r} both map to {orig!r}")
        mapping[orig] = key
    return mapping


def is_ignored(key: str) -> bool:
    return any(re.search(p, key) for p in IGNORED_ORIGINAL_KEYS)


def looks_original(keys: Mapping[str, object] | Iterable[str]) -> bool:
    """True for a state dict in the original layout (its level blocks live under ``*_temporal``)."""
    return any("down_temporal." in k or "up_temporal." in k for k in keys)
