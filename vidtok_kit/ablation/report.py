"""The comparison table of an ablation suite (markdown + CSV) and its chart (one bar panel per metric).

Measured values sit next to the paper's where the suite quotes them; for parameters and MACs the
relative difference is shown too, since those two are exactly reproducible from the architecture.
The chart is drawn with matplotlib's Agg backend (no display needed): one panel per metric, our
bar beside the paper's (hatched) for every run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidtok_kit.evaluation.report import format_value, markdown_table
from vidtok_kit.io.outputs import atomic_write, atomic_write_text

__all__ = ["COLUMNS", "comparison_csv", "comparison_markdown", "flatten", "write_chart", "write_report"]

#: metric key -> (label, decimals); the order of the table's columns
COLUMNS: dict[str, tuple[str, int]] = {
    "params_m": ("Params (M)", 2),
    "macs_t": ("MACs (T)", 3),
    "psnr": ("PSNR↑", 2),
    "ssim": ("SSIM↑", 4),
    "lpips": ("LPIPS↓", 4),
    "fvd": ("FVD↓", 1),
    "codebook_utilisation": ("U.R.↑", 4),
    "final_loss": ("train loss", 4),
    "gpu_hours": ("GPU hours", 0),
}
_DELTA = ("params_m", "macs_t")


def flatten(result: Mapping[str, Any]) -> dict[str, Any]:
    """One run's result as ``{metric: value}`` (profile, training and evaluation merged)."""
    row: dict[str, Any] = {"params_m": result["profile"]["params_m"], "macs_t": result["profile"]["macs_t"]}
    if "train" in result:
        row["final_loss"] = result["train"]["final_loss"]
    for key, value in result.get("eval", {}).get("metrics", {}).items():
        if key in COLUMNS and value is not None:
            row[key] = value
    return row


def _columns(results: Sequence[Mapping[str, Any]]) -> list[str]:
    present: set[str] = set()
    for result in results:
        present |= set(flatten(result)) | set(result.get("paper", {}))
    return [k for k in COLUMNS if k in present]


def _rows(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in results if r.get("table", True)]


def comparison_markdown(results: Sequence[Mapping[str, Any]], *, title: str = "") -> str:
    """Markdown table: per metric our value, then the paper's and (params/MACs) the difference."""
    rows = _rows(results)
    keys = [k for k in _columns(rows) if any(k in flatten(r) for r in rows)]  # measured ones only
    with_paper = {k for k in keys if any(k in r.get("paper", {}) for r in rows)}
    header = ["Run"]
    for k in keys:
        label = COLUMNS[k][0]
        header += [label] if k not in with_paper else [label, "paper"] + (["Δ"] if k in _DELTA else [])
    body = []
    for r in rows:
        ours, paper = flatten(r), r.get("paper", {})
        cells = [r["label"]]
        for k in keys:
            digits = COLUMNS[k][1]
            cells.append(format_value(ours.get(k), digits) if k in ours else "-")
            if k in with_paper:
                cells.append(format_value(paper.get(k), digits) if k in paper else "-")
                if k in _DELTA:
                    both = k in ours and paper.get(k)
                    cells.append(f"{(ours[k] - paper[k]) / paper[k] * 100:+.1f}%" if both else "-")
        body.append(cells)
    heading = f"## {title}\n\n" if title else ""
    header, body = _small_units(header, body, rows)
    shape = rows[0]["profile"]["shape"] if rows else []
    note = f"\nMACs of one encode + decode at {'x'.join(map(str, shape))} (the paper's \"FLOPs\" are MACs).\n"
    return heading + markdown_table(header, body) + note


def _small_units(header: list[str], body: list[list[str]], rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Tiny models (tests) would print 0.000 T MACs / 0.14 M params: use G MACs / k params instead."""
    scales = {"MACs (T)": ("MACs (G)", "macs_t", 1e3, 3), "Params (M)": ("Params (k)", "params_m", 1e3, 1)}
    for label, (new_label, key, factor, digits) in scales.items():
        if label not in header or not rows or max(flatten(r)[key] for r in rows) >= 0.1:
            continue
        col = header.index(label)
        header[col] = new_label
        for cells, r in zip(body, rows):
            cells[col] = format_value(flatten(r)[key] * factor, digits)
    return header, body


def comparison_csv(results: Sequence[Mapping[str, Any]]) -> str:
    """CSV: one row per run (helper runs included, flagged), ours then ``paper_*`` columns."""
    keys = _columns(results)
    fields = ["name", "label", "table", "recipe", "params", "macs"] + keys + [f"paper_{k}" for k in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in results:
        ours, paper = flatten(r), r.get("paper", {})
        row = {"name": r["name"], "label": r["label"], "table": r.get("table", True), "recipe": r["recipe"],
               "params": r["profile"]["params"], "macs": r["profile"]["macs"]}
        row.update({k: ours.get(k, "") for k in keys})
        row.update({f"paper_{k}": paper.get(k, "") for k in keys})
        writer.writerow(row)
    return buf.getvalue()


def write_chart(results: Sequence[Mapping[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Bar chart, one panel per metric (ours solid, paper hatched), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    rows = _rows(results)
    keys = [k for k in _columns(rows) if any(k in flatten(r) for r in rows)]
    cols = min(3, max(1, len(keys)))
    nrows = -(-len(keys) // cols) if keys else 1
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    labels = [r["label"] for r in rows]
    for ax, key in zip(axes.flat, keys):
        ours = [flatten(r).get(key, float("nan")) for r in rows]
        paper = [r.get("paper", {}).get(key, float("nan")) for r in rows]
        has_paper = any(v == v for v in paper)  # NaN != NaN
        width = 0.4 if has_paper else 0.7
        xs = range(len(rows))
        ax.bar([x - (width / 2 if has_paper else 0) for x in xs], ours, width, label="ours", color="#3b6ea5")
        if has_paper:
            ax.bar([x + width / 2 for x in xs], paper, width, label="paper", color="#d9a441", hatch="//")
        ax.set_title(COLUMNS[key][0])
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        if has_paper:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path


def write_report(results: Sequence[Mapping[str, Any]], output: str | Path, *, title: str = "") -> dict[str, Path]:
    """``results.md``, ``results.csv`` and ``chart.png`` in ``output``."""
    out = Path(output)
    return {
        "markdown": atomic_write_text(out / "results.md", comparison_markdown(results, title=title)),
        "csv": atomic_write_text(out / "results.csv", comparison_csv(results)),
        "chart": write_chart(results, out / "chart.png", title=title),
    }
