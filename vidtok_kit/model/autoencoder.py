"""VideoTokenizer: encoder + regularizer + decoder, with VidTok's frame conventions and input checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

from vidtok_kit.errors import RecipeError
from vidtok_kit.interfaces import RegOut
from vidtok_kit.model import frames as frame_rules
from vidtok_kit.model.decoder import Decoder
from vidtok_kit.model.encoder import Encoder
from vidtok_kit.model.layers import StreamState

if TYPE_CHECKING:
    from vidtok_kit.recipe import ModelConfig, Recipe
    from vidtok_kit.registry import ComponentRegistry
    from vidtok_kit.stream.backend import TokenizerFacts

__all__ = ["AutoencoderOutput", "VideoTokenizer", "build_model"]


class AutoencoderOutput(NamedTuple):
    #: reconstruction (B, C, T, H, W), same T as the input
    recon: Tensor
    #: the regularizer's output: latent, loss, indices, logs
    reg: RegOut


class VideoTokenizer(nn.Module):
    """A VidTok-family tokenizer built from a :class:`ModelConfig` and a component registry.

    Videos are float (B, C, T, H, W) in [-1, 1]. ``encode`` returns the regularizer output
    (``.latent`` for the decoder, ``.indices`` for discrete models); ``decode`` maps latents back.
    """

    def __init__(self, cfg: ModelConfig, registry: ComponentRegistry) -> None:
        super().__init__()
        cfg.check()
        self.config = cfg
        reg_cls = registry.get("regularizer", cfg.regularizer.kind)
        self.encoder = Encoder(cfg, registry, reg_cls.encoder_channels(cfg.regularizer.config, cfg.z_channels))
        self.regularizer = reg_cls(cfg.regularizer.config, z_channels=cfg.z_channels)
        self.decoder = Decoder(cfg, registry)

    # -- frame rules --------------------------------------------------------------------------

    @property
    def mode(self) -> Any:
        return self.config.mode

    @property
    def temporal_factor(self) -> int:
        return self.config.temporal_factor

    @property
    def spatial_factor(self) -> int:
        return self.config.spatial_factor

    @property
    def discrete(self) -> bool:
        return bool(self.regularizer.discrete)

    @property
    def facts(self) -> TokenizerFacts:
        """What this tokenizer is (mode, factors, channels, codebook), as inference backends describe it."""
        from vidtok_kit.stream.backend import TokenizerFacts

        cfg, reg = self.config, self.regularizer
        return TokenizerFacts(
            mode=self.mode,
            temporal_factor=self.temporal_factor,
            spatial_factor=self.spatial_factor,
            in_channels=cfg.in_channels,
            out_channels=cfg.out_channels,
            z_channels=cfg.z_channels,
            discrete=self.discrete,
            codebook_size=reg.codebook_size if self.discrete else None,
            index_dtype=reg.index_dtype if self.discrete else None,
        )

    def latent_frames(self, frames: int) -> int:
        """Latent frames for ``frames`` input frames."""
        return frame_rules.latent_frames(frames, tdf=self.temporal_factor, mode=self.mode)

    def output_frames(self, latent_frames: int) -> int:
        """Frames :meth:`decode` returns for ``latent_frames`` latents."""
        return frame_rules.output_frames(latent_frames, tdf=self.temporal_factor, mode=self.mode)

    def check_video(self, x: Tensor) -> None:
        """Raise :class:`InputError` (one line, saying what is allowed) for a video the model cannot take."""
        self.facts.check_video(x)

    def pad_frames(self, x: Tensor) -> Tensor:
        """Prepend copies of frame 0 as the causal conventions require."""
        pad = frame_rules.front_padding(x.shape[2], tdf=self.temporal_factor, mode=self.mode)
        return frame_rules.repeat_edges(x, front=pad)

    # -- public API -----------------------------------------------------------------------------

    def encode(self, x: Tensor, *, sample: bool = False, step: int = 0) -> RegOut:
        """(B, C, T, H, W) in [-1, 1] -> regularizer output with ``.latent`` (B, z, T', H', W') and ``.indices``."""
        self.check_video(x)
        h = self.encoder(self.pad_frames(x))
        return self.regularizer(h, sample=sample, step=step)

    def decode(self, latent: Tensor, *, num_frames: int | None = None) -> Tensor:
        """(B, z, T', H', W') -> video (B, C, T, H, W); T = ``output_frames(T')`` unless ``num_frames`` is given.

        ``num_frames`` keeps the last frames of the decoded sequence (how a v1.1 model returns
        clips whose length is not 1 + k*tdf).
        """
        self._check_latent(latent)
        full = self.decoder(latent)
        keep = frame_rules.frames_to_keep(full.shape[2], latent.shape[2], num_frames, default=self.output_frames(latent.shape[2]))
        return full[:, :, full.shape[2] - keep :]

    def decode_indices(self, indices: Tensor, *, num_frames: int | None = None) -> Tensor:
        """Integer tokens (B, T', H', W') of a discrete model -> video."""
        self.facts.check_indices(indices)
        latent = self.regularizer.indices_to_latent(indices)
        return self.decode(latent.to(self._param_dtype()), num_frames=num_frames)

    def forward(self, x: Tensor, *, sample: bool = False, step: int = 0) -> AutoencoderOutput:
        """Encode and decode; the reconstruction has the input's frame count."""
        reg = self.encode(x, sample=sample, step=step)
        recon = self.decode(reg.latent.to(self._param_dtype()), num_frames=x.shape[2])
        return AutoencoderOutput(recon=recon, reg=reg)

    # -- streaming building blocks (chunk -> chunk with explicit state) -------------------------

    def encode_chunk(self, x: Tensor, state: StreamState | None) -> Tensor:
        """Encoder on an already front-padded chunk, carrying causal context in ``state``."""
        return self.encoder(x, state)

    def decode_chunk(self, latent: Tensor, state: StreamState | None) -> Tensor:
        return self.decoder(latent, state)

    def _param_dtype(self) -> torch.dtype:
        return next(self.decoder.parameters()).dtype

    def _check_latent(self, latent: Tensor) -> None:
        self.facts.check_latent(latent)


def build_model(recipe: Recipe | ModelConfig | Any, *, registry: ComponentRegistry | None = None, device: Any = None) -> VideoTokenizer:
    """A randomly initialised tokenizer from a recipe, a recipe path or a :class:`ModelConfig`."""
    from vidtok_kit.recipe import ModelConfig, load_recipe

    if registry is None:
        from vidtok_kit.pluginmanager import default_registry

        registry = default_registry()
    cfg = recipe if isinstance(recipe, ModelConfig) else load_recipe(recipe, registry=registry).model
    try:
        if device is not None:
            with torch.device(device):
                return VideoTokenizer(cfg, registry)
        return VideoTokenizer(cfg, registry)
    except ValueError as exc:
        # a component rejecting its structural arguments (e.g. FSQ levels vs z_channels): these
        # combinations pass recipe validation, so say it in one line instead of a traceback
        raise RecipeError(f"cannot build the model: {exc}") from exc
