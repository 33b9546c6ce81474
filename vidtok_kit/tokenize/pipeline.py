"""Video files to token files and back, streamed: the library behind ``vidtok-kit encode/decode/reconstruct``.

Frames are decoded lazily (:func:`vidtok_kit.io.iter_video_chunks`), pushed through the streaming
engine (:mod:`vidtok_kit.stream`) and either collected as tokens (small: 1/(tdf*sf*sf) of the
pixels) or written out as they are decoded (:class:`vidtok_kit.io.writer.VideoWriter`), so memory
does not grow with video length. Nothing is written under the final name until it is complete.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.io import ClipPolicy, iter_video_chunks, probe_video
from vidtok_kit.io.policy import as_fraction, select_frames
from vidtok_kit.model.layers import TimeMode
from vidtok_kit.stream.budget import READ_AHEAD_FRAMES, RUNTIME_BYTES, check_frame_budget
from vidtok_kit.tokenize.tokens import TokenMeta, load_tokens, save_tokens

if TYPE_CHECKING:
    from vidtok_kit.interfaces import Tokenizer

__all__ = [
    "ReconstructResult",
    "RunOptions",
    "check_tokens_fit",
    "count_frames",
    "decode_file",
    "encode_file",
    "encode_video",
    "load_tokenizer",
    "reconstruct_file",
]

#: frames decoded from the file per read; the engine re-chunks, so this only bounds read-ahead
#: (the memory planner charges it: :data:`vidtok_kit.stream.budget.READ_AHEAD_FRAMES`)
READ_CHUNK = READ_AHEAD_FRAMES

Progress = Callable[[int], None]


@attrs.frozen(kw_only=True)
class RunOptions:
    """How the model runs: chunking, memory budget, tiling (see :class:`~vidtok_kit.stream.StreamingEncoder`)."""

    chunk_frames: int | None = None  #: encoder input frames per step (decode: this / tdf latents)
    max_memory: int | None = None  #: bytes; picks chunk (and tile) sizes when chunk_frames is None
    tile: int | None = None  #: spatial tile side in pixels
    precision: str = "fp32"
    reserved: int = 0  #: bytes of the user's budget set aside beyond ``max_memory`` (torch.compile), for messages


def load_tokenizer(
    recipe: Any,
    checkpoint: str | Path | None,
    *,
    registry: Any,
    device: str = "cpu",
    precision: str = "fp32",
    compile: str | None = None,
    stored_recipe: str | None = None,
    stored_in: str | Path | None = None,
) -> Tokenizer:
    """The tokenizer a command runs (:func:`vidtok_kit.load`), its recipe from ``recipe``, else
    ``stored_recipe`` (a token file's), else the checkpoint (ours carry theirs).

    Without a checkpoint the weights are random, drawn with a fixed seed so that encode and decode
    runs build the same model. ``tok.provenance`` is what a token file records.

    :param stored_in: the file ``stored_recipe`` was read from, named by the error when it is damaged.
    """
    import tomllib

    from vidtok_kit.loading import load
    from vidtok_kit.recipe import recipe_from_dict

    if recipe is None and stored_recipe is not None:
        where = f"{stored_in}" if stored_in is not None else "the token file"
        try:
            data = tomllib.loads(stored_recipe)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{where}: its recorded recipe is damaged (not TOML: {exc})") from None
        recipe = recipe_from_dict(data, registry=registry, source=f"{where} (stored recipe)")
    if recipe is None and checkpoint is None:
        raise InputError("no --recipe given (it may be omitted only with a vidtok-kit checkpoint, which carries its recipe)")
    return load(recipe, checkpoint, device=device, dtype=precision, compile=compile, registry=registry)


def count_frames(path: str | Path, policy: ClipPolicy) -> int:
    """Frames :func:`iter_video_chunks` yields for ``policy``, by decoding without converting pixels.

    v1.1 models pad a clip in front by an amount that depends on its length, so the length must
    be known before the first step; counting costs one decode pass (no RGB conversion or resize),
    which is small next to the model.
    """
    from vidtok_kit.io.video import _Counting, _decoded, _open, _source_rate, check_complete

    container, stream = _open(path)
    with container:
        period = 1 / (_source_rate(stream) or Fraction(25))
        start = as_fraction(policy.start_s) if policy.start_s else None
        end = as_fraction(policy.end_s) if policy.end_s is not None else None
        fps = as_fraction(policy.fps) if policy.fps else None
        decoded = _Counting(_decoded(path, container, stream))
        count = sum(1 for _ in select_frames(decoded, fps=fps, start=start, end=end, period=period))
        if policy.start_s is None and policy.end_s is None:
            check_complete(path, decoded.count, stream.frames or 0)
        return count


def _estimate_frames(info: Any, policy: ClipPolicy) -> int:
    """Frame count for a progress bar (exact only for the untouched whole video)."""
    start, end = policy.start_s or 0.0, policy.end_s if policy.end_s is not None else info.duration_s
    span = max(0.0, min(end, info.duration_s) - start)
    if policy.fps is None and not policy.start_s and policy.end_s is None:
        return info.num_frames
    return max(1, math.ceil(span * (policy.fps or info.fps)))


def _sampling(policy: ClipPolicy, fps: float) -> str:
    if policy.fps is None:
        return f"every frame ({fps:g} fps)"
    return f"resampled to {policy.fps:g} fps, nearest source frame by timestamp"


def _check_before_decoding(model: Tokenizer, source: str | Path, info: Any, policy: ClipPolicy, geometry: Any,
                           run: RunOptions, which: str) -> None:
    """Refuse, before a frame is decoded or a tensor allocated, a frame rate that would repeat
    frames without bound and a frame size that cannot fit the memory budget even tiled."""
    policy.check_source_rate(info.fps, path=source)
    net = _torch_model(model)
    if net is None:  # exported graphs: their shapes are fixed at export, checked by the runtime
        return
    itemsize = {"bf16": 2, "fp16": 2}.get(run.precision, 4)
    budget = _shared_budget(model, run).max_memory if which == "reconstruct" else run.max_memory
    try:
        check_frame_budget(net, geometry.height, geometry.width, max_memory=budget, itemsize=itemsize,
                           decode=which == "reconstruct", what=f"{source}: --size {policy.size}" if policy.size else f"{source}")
    except InputError as exc:
        if not run.reserved:
            raise
        raise InputError(f"{exc} ({run.reserved / 2**30:.2f} GiB of the budget is kept for torch.compile; --compile off frees it)") from None


def _torch_model(model: Tokenizer) -> Any:
    """The PyTorch model behind ``model``, or None for exported graphs (``InferenceTokenizer.model`` raises)."""
    try:
        return model.model  # type: ignore[attr-defined]
    except AttributeError:
        return None


def _shared_budget(model: Tokenizer, run: RunOptions) -> RunOptions:
    """Half the budget's free part for each of two streams that run at once (reconstruct: the
    encoder and the decoder): each plan charges the runtime and the weights, which they share."""
    if run.max_memory is None:
        return run
    net = _torch_model(model)
    weights = 0 if net is None else sum(p.numel() * p.element_size() for p in net.parameters())
    fixed = RUNTIME_BYTES + weights
    return attrs.evolve(run, max_memory=fixed + max(0, run.max_memory - fixed) // 2)


def _encoder_options(run: RunOptions) -> dict[str, Any]:
    return {"chunk_frames": run.chunk_frames, "max_memory": run.max_memory, "tile": run.tile}


def _decoder_options(model: Tokenizer, run: RunOptions) -> dict[str, Any]:
    tdf = model.temporal_factor
    chunk = None if run.chunk_frames is None else max(1, run.chunk_frames // tdf)
    tile = None if run.tile is None else max(1, run.tile // model.spatial_factor)
    overlap = None if tile is None else max(1, min(tile - 1, 4))
    return {"chunk_latents": chunk, "max_memory": run.max_memory, "tile": tile, "tile_overlap": overlap}


def _frames(path: str | Path, policy: ClipPolicy, progress: Progress | None) -> Iterator[Tensor]:
    for chunk in iter_video_chunks(path, READ_CHUNK, **attrs.asdict(policy)):
        if progress is not None:
            progress(chunk.shape[1])
        yield chunk.unsqueeze(0)


def encode_file(
    model: Tokenizer,
    source: str | Path,
    dest: str | Path,
    *,
    policy: ClipPolicy,
    run: RunOptions,
    provenance: dict[str, Any],
    progress: Callable[[int | None], Progress] | None = None,
) -> TokenMeta:
    """Encode one video file into a token file (:func:`encode_video`); returns what was recorded."""
    tokens, meta = encode_video(model, source, policy=policy, run=run, provenance=provenance, progress=progress)
    save_tokens(dest, tokens, meta)
    return meta


def encode_video(
    model: Tokenizer,
    source: str | Path,
    *,
    policy: ClipPolicy,
    run: RunOptions,
    provenance: dict[str, Any],
    progress: Callable[[int | None], Progress] | None = None,
) -> tuple[Tensor, TokenMeta]:
    """Encode one video file: its tokens (indices (T', H', W') or latents (C, T', H', W')) and metadata.

    :param policy: frame rate / time window / resize options (``multiple`` = the spatial factor).
    :param provenance: ``recipe`` (TOML), ``checkpoint``, ``checkpoint_sha256``, ``random_init_seed``.
    :param progress: called with the estimated frame total, returns a per-chunk callback.
    :raises VideoError: the file is missing, not a video, corrupt, empty, or a size the model cannot take.
    """
    info = probe_video(source)  # fails fast on missing / not-a-video / no frames
    geometry = policy.geometry(info.width, info.height, path=source)  # fails on sizes the model cannot take
    _check_before_decoding(model, source, info, policy, geometry, run, "encode")
    num_frames = count_frames(source, policy) if model.mode is TimeMode.CAUSAL_V1_1 else None
    tick = progress(num_frames or _estimate_frames(info, policy)) if progress else None
    encoder = model.streaming_encoder(num_frames=num_frames, **_encoder_options(run))
    parts: list[Tensor] = []
    for chunk in encoder(_frames(source, policy, tick)):
        parts.append(chunk.indices if chunk.indices is not None else chunk.latent)
    tokens = torch.cat(parts, dim=1 if model.discrete else 2)[0]
    if model.discrete:
        tokens = tokens.to(model.index_dtype)
    meta = TokenMeta(
        kind="indices" if model.discrete else "latent",
        source=str(source),
        source_fps=info.fps,
        source_width=info.width,
        source_height=info.height,
        source_frames=info.num_frames,
        fps=float(policy.fps or info.fps),
        sampling=_sampling(policy, info.fps),
        start_s=policy.start_s,
        end_s=policy.end_s,
        size=policy.size,
        resize=policy.resize,
        multiple=policy.multiple,
        geometry=attrs.asdict(geometry),
        frame_count=encoder.frames,
        front_pad=encoder.front_pad,
        tail_pad=encoder.tail_pad,
        time_mode=model.mode.value,
        temporal_factor=model.temporal_factor,
        spatial_factor=model.spatial_factor,
        codebook_size=model.codebook_size,
        precision=run.precision,
        **provenance,
    )
    return tokens, meta


def _latent_chunks(model: Tokenizer, tokens: Tensor, meta: TokenMeta, step: int = 16) -> Iterator[Tensor]:
    """Batched latent (or index) chunks of a token tensor, as the decoder stream takes them."""
    axis = 0 if meta.kind == "indices" else 1
    for part in tokens.split(step, dim=axis):
        yield part.unsqueeze(0).long() if meta.kind == "indices" else part.unsqueeze(0)


def _crop(frames: Tensor, geometry: dict[str, int]) -> Tensor:
    return frames[..., : geometry["content_height"], : geometry["content_width"]]


def decode_file(
    model: Tokenizer,
    tokens_path: str | Path,
    dest: str | Path,
    *,
    run: RunOptions,
    crf: int = 18,
    progress: Callable[[int | None], Progress] | None = None,
) -> TokenMeta:
    """Decode a token file into a video at the recorded frame rate, cropping any ``pad`` padding."""
    from vidtok_kit.io.writer import VideoWriter

    tokens, meta = load_tokens(tokens_path)
    check_tokens_fit(model, tokens, meta, source=str(tokens_path))
    decoder = model.streaming_decoder(front_pad=meta.front_pad, num_frames=meta.frame_count,
                                      total_latents=tokens.shape[0 if meta.kind == "indices" else 1], **_decoder_options(model, run))
    tick = progress(meta.frame_count) if progress else None
    with VideoWriter(dest, meta.fps, crf=crf) as writer:
        for frames in decoder(_latent_chunks(model, tokens, meta)):
            writer.write(_crop(frames, meta.geometry)[0])
            if tick is not None:
                tick(frames.shape[2])
    return attrs.evolve(meta, frame_count=writer.frames)


def check_tokens_fit(model: Tokenizer, tokens: Tensor, meta: TokenMeta, *, source: str) -> None:
    """One-line error when a token file was not made by a model like ``model``."""
    if meta.time_mode != model.mode.value or meta.temporal_factor != model.temporal_factor or meta.spatial_factor != model.spatial_factor:
        raise InputError(
            f"{source}: tokens are for a {meta.time_mode} model with factors {meta.temporal_factor}x{meta.spatial_factor}, "
            f"this model is {model.mode.value} {model.temporal_factor}x{model.spatial_factor}"
        )
    if (meta.kind == "indices") != model.discrete:
        raise InputError(f"{source}: holds {meta.kind} but the model is {'discrete' if model.discrete else 'continuous'}")
    if meta.kind == "indices" and int(tokens.max()) >= (model.codebook_size or 0):
        raise InputError(f"{source}: token {int(tokens.max())} is outside the codebook of {model.codebook_size}")
    if meta.kind == "latent" and tokens.shape[0] != model.z_channels:
        raise InputError(f"{source}: latent has {tokens.shape[0]} channels, the model takes {model.z_channels}")
    # the metadata's frame count is a claim: the tokens decide how many frames there are
    latents = tokens.shape[0 if meta.kind == "indices" else 1]
    padded = meta.frame_count + meta.tail_pad  # what was encoded: the frames plus the tail padding
    if meta.frame_count < 1 or meta.tail_pad < 0 or meta.front_pad < 0 or model.latent_frames(padded) != latents:
        raise InputError(
            f"{source}: metadata says {meta.frame_count} frames (tail padding {meta.tail_pad}), but its {latents} "
            f"latent frames hold about {model.output_frames(latents) - meta.tail_pad}: the file is damaged"
        )


@attrs.frozen(kw_only=True)
class ReconstructResult:
    frames: int
    psnr: float  #: mean over frames, dB, on [0, 1] frames (VidTok's evaluation)
    ssim: float
    psnr_per_frame: list[float]
    ssim_per_frame: list[float]


def reconstruct_file(
    model: Tokenizer,
    source: str | Path,
    dest: str | Path,
    *,
    policy: ClipPolicy,
    run: RunOptions,
    side_by_side: bool = False,
    crf: int = 18,
    progress: Callable[[int | None], Progress] | None = None,
) -> ReconstructResult:
    """Encode and decode a video in one stream, write the reconstruction (optionally beside the
    input) and score it against the model's input frames with PSNR and SSIM."""
    from vidtok_kit.io.writer import VideoWriter
    from vidtok_kit.metrics import psnr_per_frame, ssim_per_frame

    info = probe_video(source)
    frame_geometry = policy.geometry(info.width, info.height, path=source)
    _check_before_decoding(model, source, info, policy, frame_geometry, run, "reconstruct")
    geometry = attrs.asdict(frame_geometry)
    num_frames = count_frames(source, policy) if model.mode is TimeMode.CAUSAL_V1_1 else None
    tick = progress(num_frames or _estimate_frames(info, policy)) if progress else None
    pending: deque[Tensor] = deque()  # input frames read but not yet matched by decoded ones

    def remember(chunks: Iterator[Tensor]) -> Iterator[Tensor]:
        for chunk in chunks:
            pending.extend(chunk.unbind(dim=2))
            yield chunk

    run = _shared_budget(model, run)
    encoder = model.streaming_encoder(num_frames=num_frames, **_encoder_options(run))
    total = model.latent_frames(num_frames) if num_frames is not None else None
    decoder = model.streaming_decoder(front_pad=encoder.front_pad, num_frames=num_frames, total_latents=total,
                                      **_decoder_options(model, run))
    latents = (c.latent for c in encoder(remember(_frames(source, policy, tick))))
    psnr: list[float] = []
    ssim: list[float] = []
    with VideoWriter(dest, float(policy.fps or info.fps), crf=crf) as writer:
        for recon in decoder(latents):
            n = recon.shape[2]
            if num_frames is None:  # tail padding is only known at the end: never emit past the real frames
                n = min(n, len(pending))
            if n == 0:
                continue
            original = torch.stack([pending.popleft() for _ in range(n)], dim=2)
            recon = recon[:, :, :n].clamp(-1, 1)
            original, recon = _crop(original, geometry), _crop(recon, geometry)
            psnr += psnr_per_frame((original + 1) / 2, (recon + 1) / 2)[0].tolist()
            ssim += ssim_per_frame((original + 1) / 2, (recon + 1) / 2)[0].tolist()
            writer.write((torch.cat([original, recon], dim=-1) if side_by_side else recon)[0])
    return ReconstructResult(
        frames=len(psnr),
        psnr=sum(psnr) / len(psnr),
        ssim=sum(ssim) / len(ssim),
        psnr_per_frame=psnr,
        ssim_per_frame=ssim,
    )
