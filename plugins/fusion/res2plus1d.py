"""VidTok's resolution-level block: a 2-D residual block per frame, then a 1-D residual block over time.

Paper: VidTok, arXiv:2412.13061, §3.1 ("2D convolutions for spatial ... 1D for temporal").
Adapted from microsoft/VidTok ``spatial_temporal_resblk`` in ``model_3dcausal.py``.
The two halves live in ``down.{i}.block.{j}`` and ``down_temporal.{i}.block.{j}`` of the original
checkpoints; :mod:`vidtok_kit.convert.keymaps` maps them onto ``.spatial`` / ``.temporal`` here.
"""

from __future__ import annotations

import attrs
from torch import Tensor

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import FusionBlock
from vidtok_kit.model.blocks import ResBlock2d, TemporalResBlock
from vidtok_kit.model.layers import StreamState, TimeMode

__all__ = ["Res2Plus1dBlock"]


@attrs.frozen(kw_only=True)
class Res2Plus1dConfig:
    #: dropout inside both residual blocks (0 in every released model)
    dropout: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])


class Res2Plus1dBlock(FusionBlock):
    name = "res2plus1d"
    Config = Res2Plus1dConfig

    def __init__(self, config: Res2Plus1dConfig, *, in_channels: int, out_channels: int, mode: TimeMode) -> None:
        super().__init__()
        self.config = config
        self.spatial = ResBlock2d(in_channels, out_channels, dropout=config.dropout)
        self.temporal = TemporalResBlock(out_channels, mode=mode, dropout=config.dropout)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, T, H, W)."""
        return self.temporal(self.spatial(x), state)


@hookimpl
def vidtok_kit_register_fusion_blocks() -> list[type[FusionBlock]]:
    return [Res2Plus1dBlock]
