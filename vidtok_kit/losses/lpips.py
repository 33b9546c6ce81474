"""LPIPS perceptual distance (VGG16 variant) with weights read from local files only.

Paper: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
arXiv:1801.03924.

Adapted from taming-transformers ``taming/modules/losses/lpips.py``, which VidTok copies as
``vidtok/modules/lpips.py``: ImageNet scaling layer, five VGG16 relu stages, unit-normalise over
channels, squared difference, 1x1 "lin" heads, spatial mean, sum over stages.

Differences from the original, and why:

* Weight files are verified, and the network is optional. The original fetches ``vgg.pth`` from
  a university host and the VGG16 ImageNet weights through torchvision, unchecked; here
  :meth:`LPIPS.from_files` takes the files the user names (argument or environment variable),
  else :func:`vidtok_kit.weights.weight_path` finds them (the LPIPS heads in the installed
  ``lpips`` wheel, VGG16 in the cache) or downloads them once, each checked against a pinned
  SHA-256; offline with nothing cached is one line saying which file is missing.
* The module is pinned to eval mode (:meth:`LPIPS.train` is a no-op). In the original, Lightning's
  ``model.train()`` silently re-enabled the 0.5 dropout in the lin heads during training, adding
  noise to the loss; the lin heads keep their ``Dropout`` slot only so that checkpoint keys stay
  ``lin0.model.1.weight``.
* The scaling constants are non-persistent buffers: they are constants, not weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from vidtok_kit.convert.checkpoint import load_state_dict_file
from vidtok_kit.errors import CheckpointError
from vidtok_kit.losses.vgg import VGG16Features

__all__ = [
    "ENV_LPIPS_WEIGHTS",
    "ENV_VGG16_WEIGHTS",
    "LPIPS",
    "LPIPSWeightsError",
    "NetLinLayer",
    "ScalingLayer",
    "normalize_tensor",
    "read_state_dict",
]

#: Env var naming the torchvision-format VGG16 ImageNet weights (``features.N.weight``).
ENV_VGG16_WEIGHTS = "VIDTOK_KIT_VGG16_WEIGHTS"
#: Env var naming the LPIPS lin-head weights (the original ``vgg.pth``, ``linK.model.1.weight``).
ENV_LPIPS_WEIGHTS = "VIDTOK_KIT_LPIPS_WEIGHTS"

# LPIPS' ImageNet statistics expressed for inputs in [-1, 1] (taming ScalingLayer).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPSWeightsError(CheckpointError):
    """A weight file for LPIPS is not configured, missing, unreadable or has the wrong keys.

    A :class:`~vidtok_kit.errors.CheckpointError`, so the CLI reports it as its one line.
    """


class ScalingLayer(nn.Module):
    """Map ``[-1, 1]`` images to the ImageNet-normalised range the VGG trunk was trained on."""

    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(N, 3, H, W)`` in ``[-1, 1]``. :return: same shape, scaled."""
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """One 1x1 conv (no bias) weighting the channels of a squared feature difference.

    The ``Dropout`` at index 0 never acts (LPIPS is pinned to eval); it is kept so the weight's
    key is ``model.1.weight`` as in the original ``vgg.pth``.

    :param in_channels: channels of the VGG stage.
    :param device: parameter device (``"meta"`` for an empty shell to be loaded).
    """

    def __init__(self, in_channels: int, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Dropout(), nn.Conv2d(in_channels, 1, kernel_size=1, bias=False, device=device)
        )

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``(N, C, H, W)``. :return: ``(N, 1, H, W)``."""
        return self.model(x)


def normalize_tensor(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Unit-normalise over channels (dim 1), as LPIPS does before differencing features.

    :param x: ``(N, C, H, W)`` features.
    :param eps: keeps all-zero feature vectors (dead relus) at zero instead of NaN.
    :return: ``x / (||x||_2 over C + eps)``.
    """
    norm = torch.sqrt(torch.sum(x**2, dim=1, keepdim=True))
    return x / (norm + eps)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a flat tensor dict from ``.safetensors`` or a torch pickle (``weights_only=True``).

    :param path: local file; the suffix ``.safetensors`` selects safetensors, anything else is
        read with :func:`torch.load` restricted to tensors (no arbitrary code runs).
    :return: name → tensor, on CPU.
    :raises LPIPSWeightsError: one line naming the file if it is missing, unreadable or not a
        flat mapping of tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise LPIPSWeightsError(f"weight file not found: {p}")
    try:
        return load_state_dict_file(p)
    except CheckpointError as exc:
        raise LPIPSWeightsError(str(exc)) from None


def _short(keys: list[str], limit: int = 4) -> str:
    more = f", … (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _check_state_dict(sd: dict[str, Tensor], expected: dict[str, torch.Size], path: Path, what: str) -> None:
    """Strict key and shape check with a one-line error (load_state_dict's is multi-line)."""
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    mismatched = [
        f"{k} {list(sd[k].shape)} != {list(expected[k])}"
        for k in sorted(set(sd) & set(expected))
        if sd[k].shape != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected {_short(unexpected)}")
    if mismatched:
        problems.append(f"shape {_short(mismatched)}")
    if problems:
        raise LPIPSWeightsError(f"{path}: not a {what} state dict: " + "; ".join(problems))


def _resolve(path: str | os.PathLike[str] | None, weight: str, key: str) -> Path:
    """The given file, else ``$ENV``, else the installed/cached/downloaded pinned file ``weight``."""
    from vidtok_kit.weights import WeightFileError, weight_path

    try:
        return weight_path(weight, path)
    except WeightFileError as exc:
        raise LPIPSWeightsError(f"{exc}; or set the loss config key {key!r} to a local file") from None


class LPIPS(nn.Module):
    """Learned perceptual image patch similarity, VGG16 variant (frozen, eval-only).

    Build it with :meth:`from_files` (real weights) or :meth:`random_init` (tests). The plain
    constructor gives default-initialised weights, useful only as a shell to load into.

    :param device: parameter device for the trunk and heads (``"meta"``: unallocated shell).
    """

    def __init__(self, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = VGG16Features(device=device)
        chns = VGG16Features.channels
        self.lin0 = NetLinLayer(chns[0], device=device)
        self.lin1 = NetLinLayer(chns[1], device=device)
        self.lin2 = NetLinLayer(chns[2], device=device)
        self.lin3 = NetLinLayer(chns[3], device=device)
        self.lin4 = NetLinLayer(chns[4], device=device)
        self._freeze()

    # -- construction ----------------------------------------------------------------------

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @classmethod
    def _expected_vgg(cls) -> dict[str, torch.Size]:
        shell = VGG16Features(device="meta")
        return {k: v.shape for k, v in shell.state_dict().items()}

    @classmethod
    def _expected_lin(cls) -> dict[str, torch.Size]:
        return {
            f"lin{i}.model.1.weight": torch.Size([1, c, 1, 1]) for i, c in enumerate(VGG16Features.channels)
        }

    @classmethod
    def from_files(
        cls,
        vgg_path: str | os.PathLike[str] | None = None,
        lin_path: str | os.PathLike[str] | None = None,
    ) -> LPIPS:
        """Load the trunk and the heads from local files, strictly.

        :param vgg_path: torchvision ``vgg16`` state dict (``features.N.weight``/``bias``;
            ``classifier.*`` keys of a full checkpoint are ignored). Defaults to
            ``$VIDTOK_KIT_VGG16_WEIGHTS``, else ``vgg16-397923af.pth`` from the cache or its
            canonical URL (SHA-256 checked; see :mod:`vidtok_kit.weights`).
        :param lin_path: LPIPS heads as in the original ``vgg.pth`` (``linK.model.1.weight``,
            K = 0…4). Defaults to ``$VIDTOK_KIT_LPIPS_WEIGHTS``, else the installed ``lpips``
            wheel's ``weights/v0.1/vgg.pth``, else the cache or a download (SHA-256 checked).
        :return: a frozen, eval-mode LPIPS on CPU in float32.
        :raises LPIPSWeightsError: one line naming the file (or env var) at fault.
        """
        vgg_file = _resolve(vgg_path, "vgg16", "vgg16_weights")
        lin_file = _resolve(lin_path, "lpips_vgg", "lpips_weights")

        vgg_sd = {k: v for k, v in read_state_dict(vgg_file).items() if not k.startswith("classifier.")}
        _check_state_dict(vgg_sd, cls._expected_vgg(), vgg_file, "torchvision VGG16 (features.N.*)")
        lin_sd = read_state_dict(lin_file)
        _check_state_dict(lin_sd, cls._expected_lin(), lin_file, "LPIPS vgg.pth (linK.model.1.weight)")

        state = {f"net.{k}": v.float() for k, v in vgg_sd.items()}
        state.update({k: v.float() for k, v in lin_sd.items()})
        model = cls(device="meta")
        model.load_state_dict(state, strict=True, assign=True)
        model._freeze()
        return model

    @classmethod
    def random_init(cls, seed: int = 0) -> LPIPS:
        """A randomly initialised LPIPS for tests, where no pretrained weights exist.

        It keeps LPIPS' structural properties (zero for identical inputs, symmetric,
        non-negative) because the lin weights are drawn non-negative like trained ones.

        :param seed: seed of a private generator; the global RNG is left untouched.
        :return: a frozen, eval-mode LPIPS on CPU.
        """
        g = torch.Generator().manual_seed(seed)
        trunk = VGG16Features(device="meta")
        trunk.to_empty(device="cpu")
        trunk.reset_parameters(generator=g)
        state = {f"net.{k}": v for k, v in trunk.state_dict().items()}
        for key, shape in cls._expected_lin().items():
            state[key] = torch.rand(shape, generator=g) / shape[1]
        model = cls(device="meta")
        model.load_state_dict(state, strict=True, assign=True)
        model._freeze()
        return model

    def train(self, mode: bool = True) -> LPIPS:
        """Stay in eval mode whatever the parent asks (see module docstring: no head dropout)."""
        return super().train(False)

    # -- metric ----------------------------------------------------------------------------

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Perceptual distance per image.

        :param input: ``(N, 3, H, W)`` in ``[-1, 1]``.
        :param target: same shape as ``input``.
        :return: ``(N, 1, 1, 1)`` distances (shape kept so it broadcasts over pixels).
        """
        f0 = self.net(self.scaling_layer(input))
        f1 = self.net(self.scaling_layer(target))
        lins = (self.lin0, self.lin1, self.lin2, self.lin3, self.lin4)
        val: Tensor | None = None
        for a, b, lin in zip(f0, f1, lins):
            diff = (normalize_tensor(a) - normalize_tensor(b)) ** 2
            r = lin(diff).mean(dim=(2, 3), keepdim=True)
            val = r if val is None else val + r
        assert val is not None
        return val
