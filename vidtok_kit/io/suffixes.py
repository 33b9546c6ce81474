"""Video file names: which files under a folder are read as videos, and which names the writer can
write to. One rule each for every command (``encode``, ``eval`` and training data read folders;
``decode`` and ``reconstruct`` write videos).

Reading goes by suffix, not by opening each file: a folder of thousands of clips is listed at once,
and a file that carries a video suffix but does not decode is reported by the reader as that
file's error. Hidden entries are skipped: macOS leaves ``._clip.mp4`` resource forks beside copied
clips (not videos, and unreadable as ones), and ``.git`` or cache folders are not data.

Writing is checked by suffix before any work starts: the writer encodes H.264 (MPEG-4 Part 2
where the PyAV build has no H.264 encoder), which ``.webm`` (VP8/VP9/AV1), ``.gif`` and ``.y4m``
(raw) cannot hold, and a name without a known suffix gives FFmpeg no container to choose. Found
only when the first decoded chunk reached the writer, these cost a model load and a chunk of work.
"""

from __future__ import annotations

import os
from pathlib import Path

from vidtok_kit.errors import InputError

__all__ = ["VIDEO_SUFFIXES", "WRITABLE_SUFFIXES", "check_writable_video", "find_videos"]

#: container suffixes PyAV's FFmpeg opens (compared case-insensitively)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".y4m", ".flv", ".wmv", ".gif")
#: the containers of VIDEO_SUFFIXES an H.264 (or MPEG-4 Part 2) stream goes into
WRITABLE_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v", ".avi", ".ts", ".mpg", ".mpeg", ".flv", ".wmv")


def find_videos(folder: Path) -> list[Path]:
    """The video files under ``folder``, recursively, in a stable (sorted) order.

    :raises InputError: one line naming the folder when it holds none.
    """
    found = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in VIDEO_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )
    if not found:
        raise InputError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES[:4])}, ...) in this folder")
    return found


def check_writable_video(path: str | os.PathLike[str]) -> None:
    """Refuse a video output name whose suffix the writer's H.264 stream cannot go into.

    :raises InputError: one line naming the path.
    """
    suffix = Path(path).suffix
    if suffix.lower() not in WRITABLE_SUFFIXES:
        what = f"a {suffix} file" if suffix else "a name without a suffix"
        raise InputError(
            f"{os.fspath(path)}: cannot write the video to {what}; the writer makes H.264 in "
            f"{', '.join(WRITABLE_SUFFIXES[:4])}, ... (not .webm, .gif or .y4m)"
        )
