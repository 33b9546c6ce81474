"""vidtok-kit-rfsq: residual FSQ for vidtok-kit, registered through the ``vidtok_kit`` entry points."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
