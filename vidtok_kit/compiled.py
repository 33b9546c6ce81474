"""``torch.compile`` with a way back: a function compiled on first use that runs eagerly if compiling fails.

Compiling a tokenizer's encoder or decoder fuses the per-element work around the convolutions
(norm, swish, causal padding, blends, residual adds) and lets Inductor reuse activation buffers,
which on CPU is worth ~1.5x over eager PyTorch. But compiling needs a working C++ toolchain on
CPU, takes about a minute per input shape on a small machine, and can fail on a new torch; a
tokenizer that stops working because an optimisation failed would be worse than a slow one. So a
failure is reported once as a :class:`RuntimeWarning` with its reason, and every later call runs
the plain function. Errors about the input itself (:class:`~vidtok_kit.errors.InputError`) are
raised as they are: they would fail eagerly too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from vidtok_kit.errors import InputError

__all__ = ["CompiledFunction"]

#: Inductor options for inference graphs:
#: ``freezing``: parameters become constants (weights pre-packed for oneDNN);
#: ``realize_acc_reads_size_threshold``: a sum of equal-sized large buffers is written out once
#: its reads reach 16 MiB. By default Inductor keeps a residual stream unevaluated (``x + h1 + h2
#: + ...``, up to 12 reads on CPU) and recomputes it inside every consumer, so every block's
#: output stayed alive: a third of the encoder's peak memory.
INFERENCE_OPTIONS: dict[str, Any] = {"freezing": True, "realize_acc_reads_size_threshold": 16 * 2**20}


def _one_line(exc: BaseException) -> str:
    """The root cause of a compiler failure in one line (dynamo wraps backend errors)."""
    root = getattr(exc, "inner_exception", None) or exc.__cause__ or exc
    text = (str(root).strip().splitlines() or [""])[0][:300]
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


class CompiledFunction:
    """``fn`` through ``torch.compile(dynamic=False)``, falling back to ``fn`` for good on a failure.

    ``dynamic=False``: every new input shape compiles its own graph (dynamic shapes do not compile
    on this torch for these models), so use one per stream of same-shaped inputs.

    :param name: what the warning calls the function.
    :param backend: the ``torch.compile`` backend (``"inductor"``).
    :param options: Inductor options; :data:`INFERENCE_OPTIONS` by default.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        backend: str | Callable[..., Any] = "inductor",
        options: dict[str, Any] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self._backend = backend
        self._options = dict(INFERENCE_OPTIONS if options is None else options)
        self._compiled: Callable[..., Any] | None = None
        #: why compiling failed (one line), or None while compiled calls work
        self.failure: str | None = None

    @property
    def active(self) -> bool:
        """True while calls go through the compiled function."""
        return self.failure is None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failure is None:
            try:
                if self._compiled is None:
                    options = self._options if self._backend == "inductor" else None
                    self._compiled = torch.compile(self.fn, dynamic=False, backend=self._backend, options=options)
                return self._compiled(*args, **kwargs)
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - any compiler failure means "run eagerly"
                self.failure = _one_line(exc)
                warnings.warn(
                    f"torch.compile failed for {self.name} ({self.failure}); running it eagerly from now on",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self.fn(*args, **kwargs)
