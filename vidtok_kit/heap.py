"""Keep freed heap memory for reuse: the CPU memory setting every model-running path applies.

Why: glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and hands it back to the kernel on ``free``. A video model's activations are tens to
hundreds of MiB each, so every layer's output lands in new pages that the kernel must fault in and
zero one by one, and PyTorch's CPU allocator caches nothing. Measured on 2 CPU cores (causal 4x8x8,
137x64x64 encoded whole, fp32): 25.8 s with the default, 16.7 s with freed memory kept, at a
peak RSS 20% higher (the heap fragments as activations grow level by level; the memory budget's
whole-clip factors include it). PyTorch's performance guide recommends preloading jemalloc or tcmalloc for this reason;
this is the same effect from the C library already loaded: ``mallopt`` turns ``mmap`` off for
allocations (``M_MMAP_MAX = 0``) and never trims the heap top (``M_TRIM_THRESHOLD``), so a freed
activation is reused by the next layer. The memory goes back to the system when the process ends.

The setting is process-wide, so it is applied by whoever runs a model on the CPU
(:func:`vidtok_kit.load`, training) and can be declined: ``VIDTOK_KIT_HEAP=system`` leaves the
C library's defaults alone. Other C libraries (macOS, musl) are left as they are.

A kept heap fragments: streamed steps under a tight ``--max-memory`` peaked up to 35% higher
than with the C library's default (a 256x256 reconstruct planned for 800M reached 899 MiB). So a
stream that has to be cut to fit the memory budget hands the heap back
(:func:`return_freed_memory`, from the PyTorch backend's planner): the budget's promise comes
before speed, and the streamed-step calibration (``ACTIVATION_FACTOR``) is the default heap's.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["HEAP_ENV", "keep_freed_memory", "keeping_freed_memory", "return_freed_memory"]

#: ``system`` declines the setting (for processes that must hand memory back between calls)
HEAP_ENV = "VIDTOK_KIT_HEAP"
# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: heap top kept rather than trimmed: the largest value ``mallopt`` takes (an int)
_NEVER_TRIM = 2**31 - 1
# glibc's defaults, restored by return_freed_memory (its dynamic mmap threshold stays off)
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024

_kept = False


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; True if in effect (False where declined
    by ``VIDTOK_KIT_HEAP=system`` or not glibc)."""
    global _kept
    if not _kept and os.environ.get(HEAP_ENV, "").strip().lower() != "system":
        _kept = _mallopt(mmap_max=0, trim_threshold=_NEVER_TRIM)
    return _kept


def return_freed_memory() -> None:
    """Back to glibc's defaults (large blocks mapped and unmapped, the heap top trimmed), and hand
    what is free now back to the system."""
    global _kept
    if _kept:
        _mallopt(mmap_max=_DEFAULT_MMAP_MAX, trim_threshold=_DEFAULT_TRIM_THRESHOLD)
        _libc().malloc_trim(0)
        _kept = False


def keeping_freed_memory() -> bool:
    """Whether this process keeps freed memory now."""
    return _kept


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def _mallopt(*, mmap_max: int, trim_threshold: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = _libc()
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has mallopt as a no-op)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_MAX, mmap_max)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
