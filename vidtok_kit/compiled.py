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

import time
import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch

from vidtok_kit.errors import InputError

__all__ = ["AUTO_COMPILE_AFTER_SECONDS", "COMPILE_MODES", "CompileMode", "CompiledFunction"]

CompileMode = Literal["off", "on", "auto"]
COMPILE_MODES: tuple[CompileMode, ...] = ("off", "on", "auto")
#: ``compile="auto"`` compiles a call signature (input shapes, dtypes, flags) once the calls of it
#: have spent this many seconds running eagerly, and it comes back: the rent-or-buy rule, which never
#: pays more than twice the better choice made in hindsight. Compiling a released model's encoder
#: or decoder takes ~60-80 s on 2 CPU cores with a cold cache and ~10 s with Inductor's on-disk
#: cache warm, for ~1.1-1.3x faster steps: a 136-frame 64x64 clip (~20 s eager) must not compile,
#: a folder of clips should
AUTO_COMPILE_AFTER_SECONDS = 30.0
#: graphs kept per function (dynamo's default of 8 is too few for first / steady / last steps of
#: several clip sizes in one process)
RECOMPILE_LIMIT = 64

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
        #: compile a signature that comes back after this many seconds of eager calls (None:
        #: compile every call, ``"on"``)
        self.compile_after_seconds: float | None = None
        self._eager_seconds: dict[Any, float] = {}

    @classmethod
    def for_mode(cls, fn: Callable[..., Any], *, name: str, mode: CompileMode) -> Callable[..., Any]:
        """``fn`` itself (``"off"``), compiled from the first call (``"on"``) or once a signature
        has cost enough eager time (``"auto"``, see :data:`AUTO_COMPILE_AFTER_SECONDS`)."""
        if mode not in COMPILE_MODES:
            raise InputError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
        if mode == "off":
            return fn
        compiled = cls(fn, name=name)
        compiled.compile_after_seconds = AUTO_COMPILE_AFTER_SECONDS if mode == "auto" else None
        return compiled

    def _due(self, key: Any) -> bool:
        """True once this signature's earlier eager calls took ``compile_after_seconds``."""
        if self.compile_after_seconds is None:
            return True
        spent = self._eager_seconds.get(key)
        return spent is not None and spent >= self.compile_after_seconds

    def _run_eagerly(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``fn(*args, **kwargs)``, its time added to the signature's eager seconds (under ``"auto"``)."""
        if self.compile_after_seconds is None or self.failure is not None:
            return self.fn(*args, **kwargs)
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        if any(isinstance(a, torch.Tensor) and a.is_cuda for a in args):
            torch.cuda.synchronize()  # the time of the work, not of its launch
        self._eager_seconds[key] = self._eager_seconds.get(key, 0.0) + time.perf_counter() - start
        return out

    @property
    def active(self) -> bool:
        """True while calls go through the compiled function."""
        return self.failure is None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = _signature((args, kwargs)) if self.compile_after_seconds is not None else None
        if self.failure is None and self._due(key):
            try:
                if self._compiled is None:
                    _raise_recompile_limit()
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
        return self._run_eagerly(key, args, kwargs)


def _signature(value: Any) -> Any:
    """What a compiled graph is specialised on: tensor shapes, dtypes, devices; other values as they are."""
    if isinstance(value, torch.Tensor):
        return ("T", tuple(value.shape), value.dtype, value.device.type, value.is_contiguous())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_signature(v) for v in value))
    if isinstance(value, dict):
        return tuple(sorted((k, _signature(v)) for k, v in value.items()))
    return value


def _raise_recompile_limit() -> None:
    import torch._dynamo.config as dynamo_config

    if getattr(dynamo_config, "recompile_limit", RECOMPILE_LIMIT) < RECOMPILE_LIMIT:
        dynamo_config.recompile_limit = RECOMPILE_LIMIT
