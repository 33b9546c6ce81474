"""The one exception the video I/O layer raises for a bad file.

It derives from :class:`vidtok_kit.errors.InputError` (hence ``VidtokError`` and ``ValueError``) so
the CLI prints it as one line instead of a traceback, and so callers that only know ``ValueError``
still catch it. PyAV's own exceptions never leave :mod:`vidtok_kit.io`: their messages name
FFmpeg internals (``avcodec_send_packet()``) rather than the user's file.
"""

from __future__ import annotations

import os

from vidtok_kit.errors import InputError

__all__ = ["VideoError"]


class VideoError(InputError):
    """A video file cannot be read or written; ``str(err)`` is ``"<path>: <problem>"`` on one line.

    :param path: the file as the caller named it.
    :param problem: what is wrong with it, e.g. ``"not a video file (no video stream)"``.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        # FFmpeg messages can carry newlines; the contract is one line.
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self) -> tuple[type[VideoError], tuple[str, str]]:
        # Default exception pickling replays ``args`` (the joined message) into ``__init__``,
        # which takes two arguments; DataLoader workers pickle exceptions, so keep it working.
        return (type(self), (self.path, self.problem))
