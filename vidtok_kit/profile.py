"""Parameter and multiply-accumulate counts of a recipe, without allocating real tensors.

The model is built on the meta device and one encode + decode runs under
``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per multiply-accumulate for
convolutions, matmuls and attention (the VidTok paper's "TFLOPs" are MACs: 10.35 T for the 4x8x8
model at 17x256x256). The regularizer's training losses are not part of inference and not counted.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch.utils.flop_counter import FlopCounterMode

from vidtok_kit.errors import InputError
from vidtok_kit.model.autoencoder import VideoTokenizer
from vidtok_kit.model.shortcuts import using_arithmetic

__all__ = ["MAX_SHAPE", "Profile", "parse_shape", "profile_model"]

#: Largest T, H, W a ``--shape`` may ask for: 16,384 frames (9 minutes at 30 fps) of 8K video. Far
#: beyond any real clip, and small enough that the largest tensor of the released and tiny models
#: (the bottleneck attention's (H/s * W/s)^2 scores per latent frame) keeps its byte size inside
#: the 64-bit integers torch computes storage with: ``100001,100000,100000`` overflowed there, and
#: negative sizes fail deep inside ``torch.empty``. Checked on every tiny recipe and a released one.
MAX_SHAPE: tuple[int, int, int] = (16_384, 8_192, 8_192)


@attrs.frozen(kw_only=True)
class Profile:
    params_total: int
    params_encoder: int
    params_decoder: int
    params_regularizer: int
    shape: tuple[int, int, int]
    latent_shape: tuple[int, ...]
    flops_encoder: int
    flops_decoder: int

    @property
    def flops(self) -> int:
        return self.flops_encoder + self.flops_decoder

    @property
    def macs(self) -> int:
        return self.flops // 2

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": {
                "total": self.params_total,
                "encoder": self.params_encoder,
                "decoder": self.params_decoder,
                "regularizer": self.params_regularizer,
            },
            "shape": list(self.shape),
            "latent_shape": list(self.latent_shape),
            "macs": self.macs,
            "flops": self.flops,
            "macs_encoder": self.flops_encoder // 2,
            "macs_decoder": self.flops_decoder // 2,
        }


def parse_shape(text: str, *, option: str = "--shape") -> tuple[int, int, int]:
    """``"T,H,W"`` -> ``(T, H, W)``, each a positive integer no larger than :data:`MAX_SHAPE`.

    :raises InputError: one line naming ``option``, what was given and what is allowed.
    """
    parts = text.replace("x", ",").split(",")
    try:
        t, h, w = (int(part) for part in parts)
    except ValueError:
        raise InputError(f"{option} {text}: expected T,H,W such as 17,256,256") from None
    for name, value, limit in zip("THW", (t, h, w), MAX_SHAPE, strict=True):
        if not 1 <= value <= limit:
            raise InputError(f"{option} {text}: {name} = {value} is outside 1..{limit:,} (the largest shape is {MAX_SHAPE[0]},{MAX_SHAPE[1]},{MAX_SHAPE[2]})")
    return t, h, w


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def profile_model(model: VideoTokenizer, shape: tuple[int, int, int]) -> Profile:
    """Count parameters and the FLOPs of encoding + decoding one (1, C, T, H, W) clip.

    :param model: any tokenizer; a meta-device model is cheapest (nothing is computed).
    :param shape: (T, H, W) of the input clip.
    """
    t, h, w = shape
    device = next(model.parameters()).device
    x = torch.zeros(1, model.config.in_channels, t, h, w, device=device)
    model.check_video(x)
    # Inference is what is counted: in training mode a regularizer adds its losses and batch
    # statistics (FSQ's entropy terms, code-usage bincounts), which are not inference FLOPs and
    # partly have no meta-device kernels.
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), using_arithmetic(model, "reference"):
            with FlopCounterMode(display=False) as enc_counter:
                enc = model.encoder(model.pad_frames(x))
            latent = model.regularizer(enc).latent
            with FlopCounterMode(display=False) as dec_counter:
                model.decoder(latent)
    except RuntimeError as exc:
        # the meta device computes every activation's size; one that 64 bits cannot hold is a
        # shape this model cannot take, whatever MAX_SHAPE allowed (a plugin with full-size attention)
        if "overflow" not in str(exc):
            raise
        raise InputError(f"shape {t}x{h}x{w}: an activation of this model would exceed 2**63 bytes; choose a smaller shape") from None
    finally:
        model.train(was_training)
    return Profile(
        params_total=_count(model),
        params_encoder=_count(model.encoder),
        params_decoder=_count(model.decoder),
        params_regularizer=_count(model.regularizer),
        shape=(t, h, w),
        latent_shape=tuple(latent.shape),
        flops_encoder=int(enc_counter.get_total_flops()),
        flops_decoder=int(dec_counter.get_total_flops()),
    )
