"""2-D residual fusion block applied per frame: the paper's Variant 3 ("w/o 3D architecture").

Paper: VidTok, arXiv:2412.13061, §4.3 Table 2: "replaces all 3D convolutions with 2D convolutions".
Used for the bottleneck (and optionally the levels); time is then mixed only by the samplers.
"""

from __future__ import annotations

import attrs

from vidtok_kit import hookimpl
from vidtok_kit.interfaces import FusionBlock
from vidtok_kit.model.blocks import ResBlock2d
from vidtok_kit.model.layers import TimeMode

__all__ = ["Res2dBlock"]


@attrs.frozen(kw_only=True)
class Res2dConfig:
    #: dropout between the two convolutions
    dropout: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])


class Res2dBlock(ResBlock2d, FusionBlock):
    """norm -> swish -> 3x3 conv, twice, plus the skip, every frame on its own."""

    name = "res2d"
    Config = Res2dConfig

    def __init__(self, config: Res2dConfig, *, in_channels: int, out_channels: int, mode: TimeMode) -> None:
        super().__init__(in_channels, out_channels, dropout=config.dropout)
        self.config = config


@hookimpl
def vidtok_kit_register_fusion_blocks() -> list[type[FusionBlock]]:
    return [Res2dBlock]
