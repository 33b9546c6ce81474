"""What the streaming driver needs from whatever runs the network: the step backend contract.

The driver (:mod:`vidtok_kit.stream.engine`) owns every frame rule: front and tail padding,
chunking, the v1.1 first and final steps, tiling, cropping. A backend only runs one step at a
time on tensors it is handed, and says what it is (:class:`TokenizerFacts`). Two backends exist:

* :class:`~vidtok_kit.stream.torch_backend.TorchBackend`: the PyTorch model, eager or compiled,
  in fp32 / bf16 / fp16, channels-last, with the exact fast arithmetic;
* :class:`~vidtok_kit.runtime.ExportedBackend`: the graphs of an export directory on ONNX
  Runtime or TensorRT.

A whole clip is the one-chunk case: a step that is both the first (``past=None``) and the final
one, which a backend may run without producing any state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import attrs
import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.model import frames as frame_rules
from vidtok_kit.model.layers import TimeMode

if TYPE_CHECKING:
    from vidtok_kit.stream.budget import StreamPlan

__all__ = ["VALUE_BOUND", "EncodedChunk", "StepBackend", "TokenizerFacts"]

#: |value| beyond which a video is refused as not on the [-1, 1] scale (a reconstruction of a
#: [-1, 1] video overshoots by a few hundredths; 0..255 frames reach 255)
VALUE_BOUND = 1.5

Which = Literal["encode", "decode"]


class EncodedChunk(NamedTuple):
    #: (B, z, t', h', w') float32 latents, what the decoder takes
    latent: Tensor
    #: (B, t', h', w') integer tokens for discrete models, else None
    indices: Tensor | None


@attrs.frozen(kw_only=True)
class TokenizerFacts:
    """What a tokenizer is, independent of how it runs (the model, or an export's manifest)."""

    mode: TimeMode
    temporal_factor: int
    spatial_factor: int
    in_channels: int
    out_channels: int
    z_channels: int
    discrete: bool
    #: codebook size of a discrete model, else None
    codebook_size: int | None = None
    #: dtype of its integer tokens (the smallest that holds the codebook), else None
    index_dtype: torch.dtype | None = None

    def latent_frames(self, frames: int) -> int:
        return frame_rules.latent_frames(frames, tdf=self.temporal_factor, mode=self.mode)

    def output_frames(self, latents: int) -> int:
        return frame_rules.output_frames(latents, tdf=self.temporal_factor, mode=self.mode)

    def check_video(self, x: Tensor, *, values: bool = False) -> None:
        """Raise :class:`InputError` (one line, saying what is allowed) for a video the model cannot take.

        :param values: also check the values (one pass over ``x``): finite, and on the [-1, 1]
            scale. Frames passed as 0..255 floats are the classic mistake, and the model encodes
            them without complaint into meaningless tokens. The bound is loose (``VALUE_BOUND``)
            because a decoded reconstruction overshoots [-1, 1] a little and may be encoded again.
        """
        if not isinstance(x, Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"expected a video tensor of shape (B, {self.in_channels}, T, H, W), got {shape}")
        if x.shape[1] != self.in_channels:
            raise InputError(f"expected {self.in_channels} channels in dim 1 of (B, C, T, H, W), got {x.shape[1]}")
        sf = self.spatial_factor
        if x.shape[3] % sf or x.shape[4] % sf or x.shape[3] == 0 or x.shape[4] == 0:
            raise InputError(
                f"height and width must be positive multiples of {sf} (the spatial factor), got {x.shape[3]}x{x.shape[4]}"
            )
        if not frame_rules.valid_frames(x.shape[2], tdf=self.temporal_factor, mode=self.mode):
            rule = frame_rules.allowed_frames(tdf=self.temporal_factor, mode=self.mode)
            raise InputError(f"this {self.mode.value} model takes {rule}, got {x.shape[2]}")
        if not x.is_floating_point():
            raise InputError(f"expected a floating-point video in [-1, 1], got dtype {x.dtype}")
        if values and x.numel() and x.device.type != "meta":
            low, high = (float(v) for v in torch.aminmax(x.detach()))
            if not (math.isfinite(low) and math.isfinite(high)):
                raise InputError("the video holds NaN or infinite values")
            if low < -VALUE_BOUND or high > VALUE_BOUND:
                raise InputError(
                    f"video values span [{low:.4g}, {high:.4g}]; the model takes [-1, 1] "
                    "(map 0..255 frames with x / 127.5 - 1, 0..1 frames with x * 2 - 1)"
                )

    def check_latent(self, latent: Tensor) -> None:
        if not isinstance(latent, Tensor) or latent.ndim != 5 or latent.shape[1] != self.z_channels or not latent.is_floating_point():
            shape = tuple(latent.shape) if isinstance(latent, Tensor) else type(latent).__name__
            raise InputError(f"expected a float latent of shape (B, {self.z_channels}, T', H', W'), got {shape}")

    def check_indices(self, indices: Tensor) -> None:
        if not self.discrete:
            raise InputError("this model is continuous: decode latents instead")
        if not isinstance(indices, Tensor) or indices.ndim != 4 or indices.is_floating_point():
            shape = tuple(indices.shape) if isinstance(indices, Tensor) else type(indices).__name__
            raise InputError(f"expected integer indices of shape (B, T', H', W'), got {shape}")


class StepBackend(Protocol):
    """One network step at a time; the driver decides what the steps are.

    ``past`` is the previous step's state (``None`` on the first step); ``final`` says no step
    follows. Causal models stream by steps with state; non-causal ones by windows, which a
    backend may support only as a whole clip (``windows=False``).
    """

    facts: TokenizerFacts
    #: True when non-causal clips may be cut into overlapping windows (their encoder outputs are
    #: cross-faded before the regularizer)
    windows: bool
    #: True when frames may be cut into spatial tiles (encoder outputs blended before the regularizer)
    tiles: bool

    def prepare(self, x: Tensor) -> Tensor:
        """An input chunk on the backend's device, in its dtype and memory layout."""
        ...

    def plan(self, height: int, width: int, which: Which, *, max_memory: int, total: int | None = None) -> StreamPlan:
        """Chunk (and tile) sizes for a stream of frames (encode) or latents (decode) of this size.

        :param total: the stream's whole length in those units, when known: a stream that fits
            the budget whole then runs as one step (a whole clip, with the whole-clip shortcuts).
        """
        ...

    def temporal_radius(self, which: Which) -> int:
        """Receptive radius in output frames, for the overlap of non-causal windows."""
        ...

    def encode_step(
        self, chunk: Tensor, past: Sequence[Tensor] | None, *, final: bool, front_pad: int = 0
    ) -> tuple[Any, list[Tensor]]:
        """One encoder step on a front-padded chunk (its first ``front_pad`` frames are padding):
        the encoder output, for :meth:`regularize`, and the new state. A non-causal window is
        the stateless ``past=None, final=True`` step."""
        ...

    def regularize(self, h: Any, *, sample: bool = False) -> EncodedChunk:
        """The regularizer on (blended, cross-faded) encoder output."""
        ...

    def decode_step(self, latent: Tensor, past: Sequence[Tensor] | None, *, final: bool) -> tuple[Tensor, list[Tensor]]:
        """One decoder step: every frame the decoder emits for these latents (plus held-back ones)."""
        ...

    def indices_to_latent(self, indices: Tensor) -> Tensor:
        """Integer tokens (B, t, h, w) to the decoder's latent (B, z, t, h, w)."""
        ...
