"""Tokenizing video files: token files (:mod:`.tokens`), the streamed file pipeline (:mod:`.pipeline`)
and the ``encode`` / ``decode`` / ``reconstruct`` commands (:mod:`.commands`)."""

from __future__ import annotations

from vidtok_kit.tokenize.pipeline import (
    ReconstructResult,
    RunOptions,
    count_frames,
    decode_file,
    encode_file,
    load_tokenizer,
    reconstruct_file,
)
from vidtok_kit.tokenize.tokens import TokenMeta, load_tokens, read_token_meta, save_tokens

__all__ = [
    "ReconstructResult",
    "RunOptions",
    "TokenMeta",
    "count_frames",
    "decode_file",
    "encode_file",
    "load_tokenizer",
    "load_tokens",
    "read_token_meta",
    "reconstruct_file",
    "save_tokens",
]
