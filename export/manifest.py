"""The export manifest: ``manifest.json`` in an export directory, describing every graph and engine.

Layout (``format = "vidtok-kit-export"``, ``version = 1``)::

    {
      "format", "version", "vidtok_kit_version", "created",
      "recipe":     {"source", "name", "toml"},                  # resolved recipe
      "checkpoint": {"path", "sha256"} | null,                   # null = random init
      "model":      {"mode", "causal", "discrete", "temporal_factor", "spatial_factor",
                     "in_channels", "z_channels", "codebook_size", "index_dtype"},
      "rules":      {"frames", "size_multiple", "latent_frames", "decoded_frames", "keep_last_frames"},
      "export":     {"exporter", "opset", "torch", "onnx", "onnxruntime", "precision", "stream_chunk"},
      "shapes":     {"batch": [min, opt, max], "frames": [...], "height": [...], "width": [...]},
      "graphs": {
        NAME: {"file", "sha256", "doc", "ops", "notes",
               "inputs":  [{"name", "dtype", "dims", "min", "opt", "max"}],   # dims: int or axis name
               "outputs": [... same ...],
               "parity":  {"onnxruntime": {"min": REPORT, "opt": ..., "max": ...}, "tensorrt": {...}},
               "fp16":    {"file", "sha256", "ops", "parity"}}    # --precision fp16 only: encoder /
      },                                                            # decoder in fp16, same inputs and outputs
      "engines": {NAME: {"file", "precision", "tensorrt", "device", "workspace_bytes", "sha256"}}
    }

A parity REPORT gives, per output, the max abs error, the reference range, the relative error and
the tolerance (or index mismatches and their rounding margin), plus ``ok``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidtok_kit.export.deps import ExportError

from vidtok_kit.convert.checkpoint import atomic_write

__all__ = ["FORMAT", "MANIFEST", "VERSION", "read_manifest", "write_manifest"]

FORMAT = "vidtok-kit-export"
VERSION = 1
MANIFEST = "manifest.json"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write ``DIR/manifest.json`` atomically."""
    path = Path(directory) / MANIFEST
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and sanity-check an export directory's manifest; one-line :class:`ExportError` otherwise."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ExportError(f"{directory}: not an export directory (no {MANIFEST}); create one with `vidtok-kit export`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportError(f"{path}: not a vidtok-kit export manifest (format {manifest.get('format')!r})")
    if manifest.get("version") != VERSION:
        raise ExportError(f"{path}: manifest version {manifest.get('version')} is not supported (expected {VERSION})")
    for name, graph in manifest.get("graphs", {}).items():
        if not (directory / graph["file"]).is_file():
            raise ExportError(f"{directory}: graph {name!r} lists {graph['file']}, which is missing")
    return manifest
