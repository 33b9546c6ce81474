"""Optional dependencies of the export subsystem, checked up front with one-line errors.

ONNX export needs ``onnx`` and ``onnxruntime`` (the ``vidtok-kit[onnx]`` extra); TensorRT engines
need ``tensorrt`` and a CUDA GPU (``vidtok-kit[tensorrt]``). Everything is imported lazily so that
``vidtok-kit --help`` and the core never pay for (or break on) these packages.

``onnxruntime`` and ``onnxruntime-gpu`` are separate distributions that install into the same
``onnxruntime/`` folder: with both installed, whichever was installed last has overwritten part
of the other's files, and the module that imports is an unpredictable mix. ``importlib.metadata``
still lists both, which is how :func:`check_onnxruntime_install` detects the broken state.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from types import ModuleType

from vidtok_kit.errors import VidtokError

__all__ = [
    "ExportError",
    "MissingDependencyError",
    "ParityError",
    "check_onnxruntime_install",
    "cuda_available",
    "installed_onnxruntime_distributions",
    "require_onnx",
    "require_onnxruntime",
    "require_tensorrt",
]

#: distributions that all provide the ``onnxruntime`` import package
ONNXRUNTIME_DISTRIBUTIONS: tuple[str, ...] = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
)


class ExportError(VidtokError):
    """An export cannot be produced as asked (bad shapes, unsupported op, failed check)."""


class MissingDependencyError(ExportError):
    """An optional package or a GPU the requested export/backend needs is not available."""


class ParityError(ExportError):
    """An exported graph or engine disagrees with PyTorch beyond the stated tolerance."""


def _import(name: str, why: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{why} needs the Python package {name!r}, which is not installed ({exc}); "
            f"install it with: pip install 'vidtok-kit[{extra}]'"
        ) from None


def installed_onnxruntime_distributions() -> list[str]:
    """Names of the installed distributions that provide the ``onnxruntime`` module."""
    found = []
    for name in ONNXRUNTIME_DISTRIBUTIONS:
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            continue
        found.append(name)
    return found


def check_onnxruntime_install(distributions: list[str] | None = None) -> None:
    """Raise if more than one onnxruntime distribution is installed (they overwrite each other).

    :param distributions: the installed ones; default: read from ``importlib.metadata``.
    """
    found = installed_onnxruntime_distributions() if distributions is None else distributions
    if len(found) > 1:
        keep = "onnxruntime-gpu" if "onnxruntime-gpu" in found else found[-1]
        raise MissingDependencyError(
            f"broken onnxruntime install: {' and '.join(found)} are all installed and overwrite each other's "
            f"onnxruntime/ folder; fix with: pip uninstall -y {' '.join(found)} && pip install {keep}"
        )


def require_onnx() -> ModuleType:
    """The ``onnx`` module, or a one-line :class:`MissingDependencyError`."""
    return _import("onnx", "ONNX export", "onnx")


def require_onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module after checking the install is not a CPU/GPU mix."""
    check_onnxruntime_install()
    return _import("onnxruntime", "running ONNX graphs", "onnx")


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def require_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, only where a CUDA GPU is visible to PyTorch as well."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        gpu = "a CUDA GPU is visible" if cuda_available() else "and no CUDA GPU is visible either"
        raise MissingDependencyError(
            f"--trt needs TensorRT and a CUDA GPU: the Python package 'tensorrt' is not installed ({gpu}); "
            "install it with: pip install 'vidtok-kit[tensorrt]'"
        ) from None
    if not cuda_available():
        raise MissingDependencyError(
            f"--trt needs a CUDA GPU: tensorrt {getattr(trt, '__version__', '?')} is installed but PyTorch sees no "
            "CUDA device (a CPU-only torch build, no driver, or CUDA_VISIBLE_DEVICES is empty)"
        )
    return trt
