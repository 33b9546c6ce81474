"""Optimizers, the learning-rate schedule, gradient clipping and EMA weights.

VidTok trains both the autoencoder and the discriminator with Adam (default betas, lr 1e-5,
gradient-norm clip 20, no EMA in any released config; spec §5). Here the optimizer kind, betas,
weight decay, warm-up and a cosine decay are recipe options, and EMA weights are optional.

The schedule is a pure function of the step, so resuming needs only the step number; it is still
saved in checkpoints (``state_dict``) so a changed recipe is visible when a run is resumed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["EMA", "LRSchedule", "build_optimizer", "clip_gradients"]


def build_optimizer(params: Iterable[nn.Parameter], *, kind: str, lr: float, betas: Sequence[float], weight_decay: float) -> torch.optim.Optimizer:
    """Adam (VidTok) or AdamW over the parameters that require gradients."""
    trainable = [p for p in params if p.requires_grad]
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return cls(trainable, lr=lr, betas=(float(betas[0]), float(betas[1])), weight_decay=weight_decay)


class LRSchedule:
    """Linear warm-up to the base rate, then constant or cosine decay to ``base * min_ratio``.

    Steps count from 1 (the first update); :meth:`apply` writes each group's rate for a step.
    """

    def __init__(self, *, kind: str, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> None:
        self.kind, self.warmup_steps, self.total_steps, self.min_ratio = kind, warmup_steps, total_steps, min_ratio

    def factor(self, step: int) -> float:
        if self.warmup_steps and step <= self.warmup_steps:
            return step / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, step: int, base_lr: float) -> float:
        lr = base_lr * self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps, "min_ratio": self.min_ratio}


def clip_gradients(params: Sequence[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip to ``max_norm`` (0 = no clipping) and return the total norm before clipping.

    The norm is returned either way: a non-finite norm is how a bad step is detected.
    """
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(grads, max_norm)
    return torch.nn.utils.get_total_norm([p.grad for p in grads if p.grad is not None])


class EMA:
    """Exponential moving average of a model's weights (``decay`` per update), kept in a copy.

    The copy is a whole model (buffers included), so it is saved and loaded with the same
    :func:`~vidtok_kit.convert.checkpoint.save_tokenizer` as the model itself.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema: list[torch.Tensor] = list(self.model.parameters())
        cur = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema, cur, 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
