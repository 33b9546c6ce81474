"""The decoder: conv_in, mid, resolution levels from deepest to full (blocks, spatial then temporal up), conv_out.

``up[i]`` is indexed by level as in the original (``up[0]`` runs last), and temporal upsampling
sits where the recipe says, not mirrored from the encoder: VidTok's placement is asymmetric.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from torch import Tensor, nn

from vidtok_kit.model.encoder import Mid, build_block, run_blocks_then_resample, run_level, to_layout
from vidtok_kit.model.layers import ChannelNorm, StreamState, end_conv, swish

if TYPE_CHECKING:
    from vidtok_kit.recipe import ModelConfig
    from vidtok_kit.registry import ComponentRegistry

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """(B, z_channels, T', H', W') -> (B, out_channels, T' * tdf, H' * sf, W' * sf).

    ``channels_last`` and ``activation_checkpointing``: as :class:`~vidtok_kit.model.encoder.Encoder`'s.
    """

    #: convert the input to channels-last memory (see :func:`~vidtok_kit.model.encoder.to_layout`)
    channels_last = False
    #: recompute each level in the backward (see :func:`~vidtok_kit.model.encoder.run_level`)
    activation_checkpointing = False

    def __init__(self, cfg: ModelConfig, registry: ComponentRegistry) -> None:
        super().__init__()
        mode = cfg.mode
        spatial = registry.get("spatial_sampler", cfg.spatial_sampler.kind)
        temporal = registry.get("temporal_sampler", cfg.temporal_sampler.kind)
        block_in = cfg.base_channels * cfg.channel_mult[-1]
        self.conv_in = end_conv(cfg.z_channels, block_in, kind=cfg.end_conv, mode=mode)
        self.mid = Mid(cfg, registry, block_in)
        levels: list[nn.Module] = []
        lead_frames = 1  # leading frames of the first latent at this depth (see TemporalSamplerPair)
        for i in reversed(range(cfg.num_levels)):
            block_out = cfg.base_channels * cfg.channel_mult[i]
            level = nn.Module()
            level.block = nn.ModuleList()
            for j in range(cfg.num_res_blocks + 1):
                level.block.append(build_block(cfg, registry, "block", block_in if j == 0 else block_out, block_out))
            block_in = block_out
            if i in cfg.spatial_up and i in cfg.temporal_up and temporal.joint:
                # a joint space-time sampler doubles T, H and W in one module (fully 3-D variant)
                level.upsample = temporal.Up(
                    cfg.temporal_sampler.config, channels=block_out, mode=mode, lead_frames=lead_frames
                )
                lead_frames *= 2
            elif i in cfg.spatial_up:
                level.upsample = spatial.Up(cfg.spatial_sampler.config, channels=block_out, mode=mode)
                if i in cfg.temporal_up:
                    level.time_upsample = temporal.Up(
                        cfg.temporal_sampler.config, channels=block_out, mode=mode, lead_frames=lead_frames
                    )
                    lead_frames *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = ChannelNorm(block_in)
        self.conv_out = end_conv(block_in, cfg.out_channels, kind=cfg.end_conv, mode=mode)

    def forward(self, z: Tensor, state: StreamState | None = None) -> Tensor:
        h = self.conv_in(to_layout(z, channels_last=self.channels_last), state)
        h = run_level(self.mid, h, state, checkpointed=self.activation_checkpointing)
        for level in reversed(self.up):
            h = run_level(partial(run_blocks_then_resample, level, "upsample", "time_upsample"), h, state,
                          checkpointed=self.activation_checkpointing)
        return self.conv_out(swish(self.norm_out(h)), state)
