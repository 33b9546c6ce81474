"""Exact algebraic shortcuts, chosen per module when a tokenizer is prepared for inference.

Some layers can compute the same function as the original VidTok code with fewer operations or a
faster memory layout: the spatial upsampler as four 2x2 convolutions of the small image
(:mod:`vidtok_kit.model.subpixel`), the AlphaBlender time upsampler from 2-D convolutions of the
low-rate frames, a per-pixel time convolution of a channels-last clip as one dilated 2-D conv.
Results agree with the original arithmetic to float rounding (~1e-6), not bit for bit.

A module that has such a form declares it with a class attribute ``fast_arithmetic = False``
and reads ``self.fast_arithmetic`` in ``forward``; :func:`set_arithmetic` switches every such
module of a model, the way diffusers' ``set_attn_processor`` picks attention kernels. There is
no process-wide switch: two models (or two threads) never see each other's choice, and a plugin
component without a fast form simply keeps its reference form. A freshly built model uses the
reference arithmetic (training, parity tests, ``vidtok-kit profile``'s paper MAC counts);
:func:`vidtok_kit.load` switches its tokenizers to the fast one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "ARITHMETICS",
    "Arithmetic",
    "arithmetic_of",
    "exporting_graph",
    "keep_channels_last",
    "keeps_channels_last",
    "set_arithmetic",
    "using_arithmetic",
]

Arithmetic = Literal["fast", "reference"]
ARITHMETICS: tuple[Arithmetic, ...] = ("fast", "reference")


def _selectable(module: nn.Module) -> bool:
    return isinstance(getattr(type(module), "fast_arithmetic", None), bool)


def set_arithmetic(model: nn.Module, arithmetic: Arithmetic) -> list[str]:
    """Make every module of ``model`` that has a fast form use ``arithmetic``; returns their names.

    ``"fast"``: the exact shortcuts (inference; the AlphaBlender low-rate form also needs autograd
    off, as it has no backward). ``"reference"``: the original VidTok arithmetic.
    """
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {', '.join(ARITHMETICS)}, got {arithmetic!r}")
    switched = []
    for name, module in model.named_modules():
        if _selectable(module):
            module.fast_arithmetic = arithmetic == "fast"  # type: ignore[assignment]
            switched.append(name)
    return switched


def arithmetic_of(model: nn.Module) -> dict[str, Arithmetic]:
    """Each selectable module's current arithmetic, by module name."""
    return {
        name: "fast" if module.fast_arithmetic else "reference"  # type: ignore[misc]
        for name, module in model.named_modules()
        if _selectable(module)
    }


@contextlib.contextmanager
def using_arithmetic(model: nn.Module, arithmetic: Arithmetic) -> Iterator[nn.Module]:
    """``model`` with ``arithmetic`` inside the block, each module's own choice restored after
    (``vidtok-kit profile`` counts the reference arithmetic of any model it is given)."""
    saved = dict(model.named_modules())
    before = arithmetic_of(model)
    set_arithmetic(model, arithmetic)
    try:
        yield model
    finally:
        for name, kind in before.items():
            saved[name].fast_arithmetic = kind == "fast"  # type: ignore[assignment]


def keep_channels_last(out: Tensor, like: Tensor) -> Tensor:
    """``out`` in channels-last memory when ``like`` (the layer's input) is: a layout, not arithmetic.

    oneDNN's 3-D convolution returns a channels-first output for some channels-last inputs (few
    input channels, small frames), and one channels-first tensor turns the whole residual stream
    channels-first (an add takes its first operand's layout): every later 2-D conv then reads
    per-frame NCHW images and every norm makes a layout copy. A no-op where the layout already
    holds, and for channels-first inputs (the reference path).
    """
    last = torch.channels_last_3d
    if out.ndim == 5 and keeps_channels_last(like) and not out.is_contiguous(memory_format=last):
        return out.contiguous(memory_format=last)
    return out


def keeps_channels_last(x: Tensor) -> bool:
    """True for a channels-last 5-D activation whose layout the layers should keep.

    Never while a graph is exported: ONNX has no memory formats (and tracers may report odd strides).
    """
    if exporting_graph():
        return False
    return x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d)


def exporting_graph() -> bool:
    """A graph is being traced or exported (TorchScript, ONNX, ``torch.export``).

    Layers then write their exportable forms: whole-tensor operators whose frame count stays a
    dynamic shape, no memory-format tricks, and what graph runtimes run fastest.
    """
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()
