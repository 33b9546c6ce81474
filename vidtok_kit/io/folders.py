"""Which files under a folder are videos: one rule for every command that takes a folder of them
(``encode``, ``eval``, training and evaluation data).

By suffix, not by opening each file: a folder of thousands of clips is listed at once, and a file
that carries a video suffix but does not decode is reported by the reader as that file's error.
Hidden entries are skipped: macOS leaves ``._clip.mp4`` resource forks beside copied clips (not
videos, and unreadable as ones), and ``.git`` or cache folders are not data.
"""

from __future__ import annotations

from pathlib import Path

from vidtok_kit.errors import InputError

__all__ = ["VIDEO_SUFFIXES", "find_videos"]

#: container suffixes PyAV's FFmpeg opens (compared case-insensitively)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".y4m", ".flv", ".wmv", ".gif")


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
