"""Tokenizing video files: token files (:mod:`.tokens`), the streamed file pipeline (:mod:`.pipeline`)
and the ``encode`` / ``decode`` / ``reconstruct`` commands (:mod:`.commands`)."""

from __future__ import annotations

from vidtok_kit._lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["ReconstructResult", "RunOptions", "count_frames", "decode_file", "encode_file", "load_tokenizer",
                     "reconstruct_file"], "pipeline"),
    **dict.fromkeys(["TokenMeta", "load_tokens", "read_token_meta", "save_tokens"], "tokens"),
})

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
