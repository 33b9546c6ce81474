"""Evaluation outputs: per-video CSV, summary JSON and a markdown table, each written atomically.

A reader never sees a half-written file: every file is written to a temporary name in the same
folder and renamed over the final name (the rename is atomic on POSIX and Windows).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from vidtok_kit.io import outputs

__all__ = ["METRIC_LABELS", "atomic_write_text", "format_value", "markdown_table", "per_video_csv", "write_eval_outputs"]

#: metric key -> (column label, arrow saying which way is better)
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "psnr": ("PSNR", "↑"),
    "ssim": ("SSIM", "↑"),
    "lpips": ("LPIPS", "↓"),
    "fvd": ("FVD", "↓"),
    "codebook_utilisation": ("U.R.", "↑"),
    "codebook_perplexity": ("Perplexity", "↑"),
}

_PER_VIDEO_FIELDS = ("path", "status", "frames", "clips", "scored_frames", "psnr", "ssim", "lpips", "seconds", "error")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, with the umask's permissions (the shared
    :func:`vidtok_kit.io.outputs.atomic_write_text`; kept here because callers import it from here)."""
    return outputs.atomic_write_text(path, text)


def format_value(value: Any, digits: int = 4) -> str:
    """Numbers for tables: ``digits`` significant decimals, '-' for missing or non-finite values."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table (cells are escaped for ``|``)."""
    esc = [[str(c).replace("|", "\\|") for c in row] for row in [list(header), *map(list, rows)]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
    return "\n".join(lines) + "\n"


def per_video_csv(results: Iterable[Any]) -> str:
    """CSV text of :class:`~vidtok_kit.evaluation.evaluator.VideoResult` rows (skipped files included)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_PER_VIDEO_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        row = attrs.asdict(result)
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in _PER_VIDEO_FIELDS})
    return buf.getvalue()


def _summary_markdown(summary: Mapping[str, Any]) -> str:
    metrics = summary["metrics"]
    keys = [k for k in METRIC_LABELS if k in metrics]
    header = ["videos", "clips", "frames"] + [f"{METRIC_LABELS[k][0]}{METRIC_LABELS[k][1]}" for k in keys]
    row = [str(summary["videos"]), str(summary["clips"]), str(summary["scored_frames"])]
    row += [format_value(metrics[k], 2 if k in ("psnr", "fvd", "codebook_perplexity") else 4) for k in keys]
    lines = [f"# Evaluation: {summary.get('recipe', '')}", ""]
    lines.append(f"checkpoint: {summary.get('checkpoint') or 'none (random initialisation)'}  ")
    lines.append(f"data: {summary.get('data', '')}  ")
    opts = summary.get("options", {})
    lines.append(
        f"protocol: {summary['clip_frames']}-frame clips at {opts.get('fps') or 'native'} fps, "
        f"{opts.get('size') or 'native'} px centre crop{', whole videos' if opts.get('long') else ''}"
    )
    lines += ["", markdown_table(header, [row])]
    if summary.get("skipped"):
        lines += ["## Skipped files", ""] + [f"- `{s['path']}`: {s['error']}" for s in summary["skipped"]] + [""]
    if summary.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in summary["notes"]] + [""]
    return "\n".join(lines)


def write_eval_outputs(output: str | Path, results: Iterable[Any], summary: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``per_video.csv``, ``summary.json`` and ``summary.md`` into ``output``; returns their paths."""
    out = Path(output)
    paths = {
        "csv": atomic_write_text(out / "per_video.csv", per_video_csv(results)),
        "json": atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n"),
        "markdown": atomic_write_text(out / "summary.md", _summary_markdown(summary)),
    }
    return paths
