"""Comparing an exported graph's outputs with PyTorch's, with tolerances stated up front.

Floating outputs pass when ``max |out - ref| <= rel * (max(ref) - min(ref))`` (the output range;
an all-constant output falls back to the absolute error). Integer outputs (quantizer indices) must
match exactly, except where PyTorch's own pre-rounding value lies within ``index_margin`` of a
rounding boundary: there a last-bit difference in the encoder may legitimately flip the index
(spec §8.10), and the latent codes at those positions are not compared either. Any NaN or Inf in
an output fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from vidtok_kit.export.deps import ParityError

__all__ = ["TOLERANCES", "Tolerance", "check_outputs", "raise_on_failure", "rounding_margin"]


@dataclass(frozen=True)
class Tolerance:
    #: max abs error relative to the reference output's range
    rel: float
    #: an index may differ only where the reference is closer than this to a rounding boundary
    index_margin: float


#: per precision of the engine under test (ONNX graphs are always fp32)
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(rel=1e-4, index_margin=1e-3),
    "fp16": Tolerance(rel=1e-2, index_margin=5e-2),
    "bf16": Tolerance(rel=3e-2, index_margin=1e-1),
}


def rounding_margin(graph: Any, inputs: tuple[Any, ...], encoder_output: Any = None) -> np.ndarray | None:
    """Per-token distance of the regularizer's pre-rounding values to the nearest rounding boundary.

    Only for encoder graphs of quantizers that expose ``bound`` (FSQ); returns (B, T', H', W')
    (the smallest margin over channels) or None where no such notion exists.

    :param encoder_output: the regularizer's input from the reference run, when it was captured
        (otherwise the encoder runs again).
    """
    import torch

    module = graph.module
    reg = module.model.regularizer
    if not graph.encoder or not module.model.discrete or not hasattr(reg, "bound"):
        return None
    with torch.no_grad():
        h = (module.encoder_output(*inputs) if encoder_output is None else encoder_output).float()
        bounded = reg.bound(h.movedim(1, h.ndim - 1))
    margin = (bounded - torch.floor(bounded) - 0.5).abs()
    return margin.amin(dim=-1).numpy()


def _float_report(ref: np.ndarray, out: np.ndarray, tol: float, mask: np.ndarray | None) -> dict[str, Any]:
    finite = bool(np.isfinite(out).all())
    if mask is not None:
        ref, out = ref[mask], out[mask]
    if ref.size == 0:
        return {"max_abs": 0.0, "range": 0.0, "rel": 0.0, "tolerance": tol, "ok": finite}
    err = float(np.abs(out.astype(np.float64) - ref.astype(np.float64)).max()) if finite else float("inf")
    span = float(ref.max()) - float(ref.min())
    rel = err / span if span > 0 else err
    return {"max_abs": err, "range": span, "rel": rel, "tolerance": tol, "ok": finite and rel <= tol}


def check_outputs(
    names: list[str],
    refs: list[np.ndarray],
    outs: list[np.ndarray],
    tolerance: Tolerance,
    *,
    margin: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare each output; return a report ``{name: {...}, "ok": bool}`` (never raises)."""
    report: dict[str, Any] = {}
    flips: np.ndarray | None = None
    for name, ref, out in zip(names, refs, outs):
        if np.issubdtype(ref.dtype, np.integer) and ref.shape == out.shape:
            differ = ref != out
            n = int(differ.sum())
            worst = float(margin[differ].max()) if n and margin is not None else None
            ok = n == 0 or (worst is not None and worst < tolerance.index_margin)
            report[name] = {"mismatches": n, "of": int(ref.size), "max_margin_of_mismatch": worst,
                            "index_margin": tolerance.index_margin, "ok": ok}
            flips = differ if flips is None else flips | differ
    for name, ref, out in zip(names, refs, outs):
        if name in report:
            continue
        if ref.shape != out.shape:
            report[name] = {"shape": list(out.shape), "expected": list(ref.shape), "ok": False}
            continue
        mask = None
        if flips is not None and flips.any() and ref.ndim == flips.ndim + 1 and ref.shape[2:] == flips.shape[1:]:
            mask = np.broadcast_to(~flips[:, None], ref.shape)  # codes of flipped tokens differ by design
        report[name] = _float_report(ref, out, tolerance.rel, mask)
    report["ok"] = all(r["ok"] for r in report.values() if isinstance(r, dict))
    return report


def raise_on_failure(graph: str, backend: str, point: str, report: dict[str, Any]) -> None:
    """One-line :class:`ParityError` naming the first failing output and by how much."""
    if report["ok"]:
        return
    for name, r in report.items():
        if not isinstance(r, dict) or r["ok"]:
            continue
        if "mismatches" in r:
            detail = f"{r['mismatches']} of {r['of']} indices differ (margin {r['max_margin_of_mismatch']})"
        elif "expected" in r:
            detail = f"shape {r['shape']} instead of {r['expected']}"
        else:
            detail = f"error {r['rel']:.3g} of the output range exceeds the tolerance {r['tolerance']:g}"
        raise ParityError(f"{backend} parity failed for graph {graph!r} at the {point} shape: output {name!r}: {detail}")
