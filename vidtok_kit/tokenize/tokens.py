"""The token file: one video's tokens in a safetensors file, with everything needed to decode them.

Layout: a single tensor, ``indices`` (T', H', W') in the smallest integer dtype holding the codebook
(discrete models) or ``latent`` (z, T', H', W') float32 (continuous models), plus string metadata:
``format``, ``recipe`` (the resolved recipe TOML) and one JSON-encoded value per
:class:`TokenMeta` field (checkpoint and its hash, source path and size, frame rate and sampling
rule, time window, resize/crop policy and geometry, frame count and padding). Metadata is
readable with any safetensors tool, without vidtok-kit. Files are written under a temporary name
and renamed, so a token file that exists is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from vidtok_kit.errors import InputError
from vidtok_kit.io.outputs import atomic_write  # umask permissions, like any open()-created file

__all__ = ["FORMAT", "TokenMeta", "load_tokens", "read_token_meta", "save_tokens"]

FORMAT = "vidtok-kit-tokens"
FORMAT_VERSION = 1


@attrs.frozen(kw_only=True)
class TokenMeta:
    """What a token file records besides the tokens."""

    kind: str  #: "indices" or "latent"
    recipe: str  #: resolved recipe TOML of the model
    checkpoint: str  #: absolute checkpoint path (decode finds it from any folder), "" for a randomly initialised model
    checkpoint_sha256: str  #: short content hash of the checkpoint, "" for random init
    random_init_seed: int | None = None  #: seed of a randomly initialised model, None with a checkpoint
    source: str  #: the video file as given
    source_fps: float
    source_width: int
    source_height: int
    source_frames: int  #: frame count the container reports
    fps: float  #: frame rate of the tokenized frames
    sampling: str  #: how frames were chosen, in words
    start_s: float | None = None
    end_s: float | None = None
    size: int | None = None  #: shorter side resized to this, None = no resize
    resize: str  #: "crop", "pad" or "none" (see vidtok_kit.io.ClipPolicy)
    multiple: int  #: the model's spatial factor that sizes were fitted to
    geometry: dict[str, int]  #: FrameGeometry fields: resized size, crop offset, output and content size
    frame_count: int  #: frames tokenized (and decoded back)
    front_pad: int  #: copies of frame 0 put in front before encoding (dropped when decoding)
    tail_pad: int  #: copies of the last frame appended (dropped when decoding)
    time_mode: str  #: "v1.0", "v1.1" or "noncausal"
    temporal_factor: int
    spatial_factor: int
    codebook_size: int | None = None
    precision: str = "fp32"
    vidtok_kit_version: str = ""

    def to_metadata(self) -> dict[str, str]:
        values = attrs.asdict(self)
        meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "recipe": values.pop("recipe")}
        meta.update({k: json.dumps(v) for k, v in values.items()})
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str], *, source: str) -> TokenMeta:
        if meta.get("format") != FORMAT:
            raise InputError(f"{source}: not a vidtok-kit token file (its metadata has no format={FORMAT!r})")
        if meta.get("format_version") != str(FORMAT_VERSION):
            raise InputError(f"{source}: token file format version {meta.get('format_version')!r} is not {FORMAT_VERSION}")
        fields = {f.name for f in attrs.fields(cls)}
        try:
            values: dict[str, Any] = {k: json.loads(v) for k, v in meta.items() if k in fields and k != "recipe"}
            return cls(recipe=meta["recipe"], **values)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: token file metadata is incomplete or malformed ({exc})") from None


def save_tokens(path: str | Path, tokens: Tensor, meta: TokenMeta) -> Path:
    """Write ``tokens`` (without batch dim) and ``meta`` to ``path`` atomically."""
    path = Path(path)
    tensors = {meta.kind: tokens.detach().contiguous().cpu()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta.to_metadata()))
    return path


def read_token_meta(path: str | Path) -> TokenMeta:
    """Only the metadata of a token file (cheap: the tensor is not read)."""
    return _open(path, tensor=False)[1]


def load_tokens(path: str | Path) -> tuple[Tensor, TokenMeta]:
    """``(tokens, meta)``: indices (T', H', W') or latent (z, T', H', W'); errors name the file."""
    tokens, meta = _open(path, tensor=True)
    assert tokens is not None
    return tokens, meta


def _open(path: str | Path, *, tensor: bool) -> tuple[Tensor | None, TokenMeta]:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such token file")
    if p.is_dir():
        raise InputError(f"{path}: is a directory, not a token file")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = TokenMeta.from_metadata(dict(fh.metadata() or {}), source=str(path))
            if not tensor:
                return None, meta
            if meta.kind not in fh.keys():
                raise InputError(f"{path}: token file has no {meta.kind!r} tensor (found {sorted(fh.keys())})")
            tokens = fh.get_tensor(meta.kind)
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable safetensors token file ({first})") from None
    expected = 3 if meta.kind == "indices" else 4
    if tokens.ndim != expected or (meta.kind == "indices") == tokens.is_floating_point():
        raise InputError(f"{path}: {meta.kind} tensor has shape {tuple(tokens.shape)} and dtype {tokens.dtype}")
    return tokens, meta

