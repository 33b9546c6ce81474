"""3-D residual fusion block: VidTok's bottleneck (mid) blocks, and the paper's Variant 1 level blocks.

Paper: VidTok, arXiv:2412.13061, §3.1 ("3D convolutions for information fusion" in the bottleneck).
Adapted from microsoft/VidTok ``ResnetCausalBlock`` / ``ResnetNoncausalBlock``.
"""

from __future__ import annotations

import attrs

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import FusionBlock
from vidtok_kit.model.blocks import ResBlock3d
from vidtok_kit.model.layers import TimeMode

__all__ = ["Res3dBlock"]


@attrs.frozen(kw_only=True)
class Res3dConfig:
    #: dropout between the two convolutions (0 in every released model)
    dropout: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])


class Res3dBlock(ResBlock3d, FusionBlock):
    """norm -> swish -> 3x3x3 conv, twice, plus the skip; causal in time for causal models."""

    name = "res3d"
    Config = Res3dConfig

    def __init__(self, config: Res3dConfig, *, in_channels: int, out_channels: int, mode: TimeMode) -> None:
        super().__init__(in_channels, out_channels, mode=mode, dropout=config.dropout)
        self.config = config


@hookimpl
def vidtok_kit_register_fusion_blocks() -> list[type[FusionBlock]]:
    return [Res3dBlock]
