"""Per-step speed and memory options of training, applied to a model explicitly (``[train]`` table).

* ``arithmetic = "fast"``: :func:`~vidtok_kit.model.shortcuts.set_arithmetic` on the trained model:
  the exact shortcuts with gradients (the sub-pixel spatial upsampler, a per-pixel time conv of a
  channels-last clip as one dilated 2-D conv) are used in the forward and so in the backward.
  The AlphaBlender's low-rate form has no backward and skips itself under autograd.
* ``channels_last``: encoder and decoder take their input in ``torch.channels_last_3d`` memory and
  every layer keeps that layout (:func:`~vidtok_kit.model.shortcuts.keep_channels_last`).
* ``compile``: the encoder, decoder and discriminator forwards go through ``torch.compile``
  (:class:`~vidtok_kit.compiled.CompiledFunction`: ``dynamic=False``, back to eager with one
  warning on failure), and AOTAutograd compiles their backward. No inference options: freezing
  would turn the trained weights into constants.
* ``activation_checkpointing``: each encoder and decoder level recomputes its activations in the
  backward (:func:`~vidtok_kit.model.encoder.run_level`).

All four are off by default, which leaves a training step bit-identical to the plain one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from vidtok_kit.compiled import CompiledFunction
from vidtok_kit.model.shortcuts import set_arithmetic

if TYPE_CHECKING:
    from vidtok_kit.model.autoencoder import VideoTokenizer

__all__ = ["TRAINING_COMPILE_OPTIONS", "compile_forward", "prepare_for_training"]

#: Inductor options for training graphs: none. Inference's ``freezing`` would bake the weights
#: in as constants (wrong once the optimizer changes them).
TRAINING_COMPILE_OPTIONS: dict[str, Any] = {}


def prepare_for_training(
    model: VideoTokenizer,
    *,
    arithmetic: str = "reference",
    channels_last: bool = False,
    compile: bool = False,
    activation_checkpointing: bool = False,
    discriminator: nn.Module | None = None,
    backend: str = "inductor",
) -> list[CompiledFunction]:
    """Apply the training speed options to ``model`` (a :class:`~vidtok_kit.model.autoencoder.VideoTokenizer`)
    in place, and to ``discriminator`` (compile only).

    Call it on the trained model only, after any copy of it (EMA) was taken: a compiled forward
    is bound to the module it was made from.

    :param backend: the ``torch.compile`` backend (tests use ``"aot_eager"``: the same graphs, no codegen).
    :return: the compiled forwards (empty unless ``compile``), to check ``.active`` / ``.failure``.
    """
    set_arithmetic(model, "fast" if arithmetic == "fast" else "reference")
    for part in (model.encoder, model.decoder):
        part.channels_last = channels_last
        part.activation_checkpointing = activation_checkpointing
    if not compile:
        return []
    modules: list[tuple[str, nn.Module]] = [("the encoder", model.encoder), ("the decoder", model.decoder)]
    if discriminator is not None:
        modules.append(("the discriminator", discriminator))
    return [compile_forward(module, name=name, backend=backend) for name, module in modules]


def compile_forward(module: nn.Module, *, name: str, backend: str = "inductor") -> CompiledFunction:
    """Route ``module(...)`` through a compiled copy of its class's ``forward`` (state-dict keys,
    hooks and ``nn.Module.__call__`` stay as they are); returns the :class:`CompiledFunction`."""
    eager = type(module).forward.__get__(module)
    compiled = CompiledFunction(eager, name=f"{name} (training)", backend=backend, options=TRAINING_COMPILE_OPTIONS)
    module.forward = compiled  # type: ignore[method-assign]
    return compiled
