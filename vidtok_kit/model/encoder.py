"""The encoder: conv_in, resolution levels (blocks, spatial then temporal downsampling), mid, conv_out.

Module names follow the original VidTok tree (``down.{i}.block.{j}``, ``mid.block_1`` ...) so the
key map to original checkpoints stays a short declarative table.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vidtok_kit.model.layers import ChannelNorm, SpatialAttention, StreamState, end_conv, swish

if TYPE_CHECKING:
    from vidtok_kit.recipe import ModelConfig
    from vidtok_kit.registry import ComponentRegistry

__all__ = ["Encoder", "Mid", "build_block", "run_blocks_then_resample", "run_level", "to_layout"]


def build_block(cfg: ModelConfig, registry: ComponentRegistry, slot: str, in_ch: int, out_ch: int) -> nn.Module:
    spec = getattr(cfg, slot)
    cls = registry.get("fusion", spec.kind)
    return cls(spec.config, in_channels=in_ch, out_channels=out_ch, mode=cfg.mode)


def to_layout(x: Tensor, *, channels_last: bool) -> Tensor:
    """``x`` in channels-last memory if asked (a layout only: the same numbers), else as it is."""
    if channels_last and x.ndim == 5:
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def run_level(fn: Callable[..., Tensor], h: Tensor, state: StreamState | None, *, checkpointed: bool) -> Tensor:
    """``fn(h, state)``, recomputed in the backward instead of keeping its activations when
    ``checkpointed`` (``torch.utils.checkpoint``, non-reentrant; the RNG state is replayed).

    Only for a whole clip under autograd: a streamed step's state is written during the forward
    and would be written again by the recomputation.
    """
    if checkpointed and state is None and torch.is_grad_enabled():
        return checkpoint(fn, h, None, use_reentrant=False)
    return fn(h, state)


class Mid(nn.Module):
    """Bottleneck: fusion block -> per-frame attention -> fusion block."""

    def __init__(self, cfg: ModelConfig, registry: ComponentRegistry, channels: int) -> None:
        super().__init__()
        self.block_1 = build_block(cfg, registry, "fusion", channels, channels)
        self.attn_1 = SpatialAttention(channels, mode=cfg.mode)
        self.block_2 = build_block(cfg, registry, "fusion", channels, channels)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        x = self.block_1(x, state)
        x = self.attn_1(x, state)
        return self.block_2(x, state)


class Encoder(nn.Module):
    """(B, in_channels, T, H, W) (already front-padded) -> (B, encoder_channels, T/tdf, H/sf, W/sf).

    Two per-model choices, set by the trainer (``train.channels_last``,
    ``train.activation_checkpointing``), never read from a process-wide switch:
    ``channels_last`` runs the activations in ``torch.channels_last_3d`` memory (the layers keep
    the layout of their input, and the frame padding before the encoder does not);
    ``activation_checkpointing`` recomputes each level (and the mid) in the backward instead of
    keeping its activations.
    """

    #: convert the input to channels-last memory (see :func:`to_layout`)
    channels_last = False
    #: recompute each level in the backward (see :func:`run_level`)
    activation_checkpointing = False

    def __init__(self, cfg: ModelConfig, registry: ComponentRegistry, out_channels: int) -> None:
        super().__init__()
        mode = cfg.mode
        spatial = registry.get("spatial_sampler", cfg.spatial_sampler.kind)
        temporal = registry.get("temporal_sampler", cfg.temporal_sampler.kind)
        self.conv_in = end_conv(cfg.in_channels, cfg.base_channels, kind=cfg.end_conv, mode=mode)
        self.down = nn.ModuleList()
        block_in = cfg.base_channels
        for i, mult in enumerate(cfg.channel_mult):
            block_out = cfg.base_channels * mult
            level = nn.Module()
            level.block = nn.ModuleList()
            for j in range(cfg.num_res_blocks):
                level.block.append(build_block(cfg, registry, "block", block_in if j == 0 else block_out, block_out))
            if i in cfg.spatial_down and i in cfg.temporal_down and temporal.joint:
                # a joint space-time sampler halves T, H and W in one module (fully 3-D variant)
                level.downsample = temporal.Down(cfg.temporal_sampler.config, channels=block_out, mode=mode)
            elif i in cfg.spatial_down:
                level.downsample = spatial.Down(cfg.spatial_sampler.config, channels=block_out, mode=mode)
                if i in cfg.temporal_down:
                    level.time_downsample = temporal.Down(cfg.temporal_sampler.config, channels=block_out, mode=mode)
            self.down.append(level)
            block_in = block_out
        self.mid = Mid(cfg, registry, block_in)
        self.norm_out = ChannelNorm(block_in)
        self.conv_out = end_conv(block_in, out_channels, kind=cfg.end_conv, mode=mode)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """``state`` carries causal context between chunks when streaming; None = whole clip."""
        h = self.conv_in(to_layout(x, channels_last=self.channels_last), state)
        for level in self.down:
            h = run_level(partial(run_blocks_then_resample, level, "downsample", "time_downsample"), h, state,
                          checkpointed=self.activation_checkpointing)
        h = run_level(self.mid, h, state, checkpointed=self.activation_checkpointing)
        return self.conv_out(swish(self.norm_out(h)), state)


def run_blocks_then_resample(level: Any, spatial: str, temporal: str, h: Tensor, state: StreamState | None) -> Tensor:
    """One level of the encoder or decoder: its blocks, then its spatial and temporal samplers
    (the attributes ``spatial`` / ``temporal``, where the level has them)."""
    for block in level.block:
        h = block(h, state)
    for name in (spatial, temporal):
        if hasattr(level, name):
            h = getattr(level, name)(h, state)
    return h
