"""Video I/O for vidtok-kit: probe, lazily decode into model-ready chunks, and write videos.

Everything a training or evaluation loop needs to turn files into ``(3, T, H, W)`` tensors in
[-1, 1] and back lives here, built on PyAV alone. Bad files raise :class:`VideoError`, a one-line
``"<path>: <problem>"`` message.
"""

from __future__ import annotations

from vidtok_kit.io.errors import VideoError
from vidtok_kit.io.policy import RESIZE_MODES, ClipPolicy, FrameGeometry, ResizeMode
from vidtok_kit.io.samples import sample_videos
from vidtok_kit.io.suffixes import VIDEO_SUFFIXES, WRITABLE_SUFFIXES, check_writable_video, find_videos
from vidtok_kit.io.video import VideoInfo, iter_video_chunks, probe_video, read_video, write_video

__all__ = [
    "RESIZE_MODES",
    "VIDEO_SUFFIXES",
    "ClipPolicy",
    "FrameGeometry",
    "ResizeMode",
    "VideoError",
    "VideoInfo",
    "WRITABLE_SUFFIXES",
    "check_writable_video",
    "find_videos",
    "iter_video_chunks",
    "probe_video",
    "read_video",
    "sample_videos",
    "write_video",
]
