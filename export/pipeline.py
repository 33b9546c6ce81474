"""``export_tokenizer``: every graph of a tokenizer to ONNX (and TensorRT), each checked against PyTorch.

Order of work: check options and dependencies (fail before anything is written), build the model,
then per graph: export -> ``onnx.checker`` -> TensorRT operator check -> ONNX Runtime parity at the
min / opt / max shapes; then, with ``trt``, build engines and run the same parity through them.
Everything is written into a temporary sibling directory that is renamed onto the output only
when all checks passed: a failed export leaves nothing behind under the requested name.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidtok_kit.export.deps import ExportError, require_onnx, require_onnxruntime, require_tensorrt
from vidtok_kit.export.manifest import FORMAT, VERSION, write_manifest
from vidtok_kit.export.parity import TOLERANCES, Tolerance, check_outputs, raise_on_failure, rounding_margin
from vidtok_kit.export.shapes import POINTS, Point, ShapeProfile, default_profile, parse_shapes

from vidtok_kit.io.outputs import check_output

__all__ = ["PRECISIONS", "export_tokenizer"]

PRECISIONS = ("fp32", "fp16", "bf16")
_TRACE_SEED = 1234


def _graph_point(graph: Any, point: Point, which: str) -> Point:
    if graph.chunk_latents is None:
        return point
    return point._replace(frames=graph.chunk_latents[which])


def _inputs_at(graph: Any, point: Point, seed: int) -> tuple[Any, ...]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return tuple(t.contiguous() for t in graph.make_inputs(point, gen))


def _numpy(tensors: Sequence[Any]) -> list[Any]:
    return [t.detach().cpu().numpy() for t in tensors]


def _spec_entry(spec: Any, shapes: dict[str, list[int]]) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "dims": list(spec.dims), **shapes}


def _reference(graph: Any, inputs: tuple[Any, ...]) -> list[Any]:
    import torch

    with torch.no_grad():
        out = graph.module(*inputs)
    return list(out) if isinstance(out, tuple) else [out]


def export_tokenizer(
    recipe: Any,
    output: str | Path,
    *,
    checkpoint: str | Path | None = None,
    onnx: bool = True,
    trt: bool = False,
    precision: str = "fp32",
    opset: int = 18,
    shapes: ShapeProfile | str | None = None,
    batch: tuple[int, int, int] | None = None,
    stream_chunk: int | None = 4,
    tolerance: float | None = None,
    exporter: str = "torchscript",
    workspace_gb: float = 4.0,
    timing_cache: str | Path | None = None,
    overrides: Sequence[str] = (),
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Export a tokenizer into the directory ``output`` and return its manifest.

    :param recipe: recipe path or object (None: the one stored in ``checkpoint``).
    :param shapes: ``"TxHxW,TxHxW,TxHxW"`` (min,opt,max) or a :class:`ShapeProfile`; default from the recipe.
    :param batch: min,opt,max batch (default 1,1,2).
    :param stream_chunk: latents per streaming step for causal models (None: no stream graphs).
    :param precision: of the TensorRT engines; ONNX graphs are fp32 and checked at fp32 tolerance.
    :param tolerance: max error relative to the output range, overriding the precision's default
        (fp32 1e-4, fp16 1e-2, bf16 3e-2); it applies to ONNX Runtime and TensorRT alike.
    :raises ExportError: bad options, a missing dependency, a failed check or parity beyond tolerance.
    """

    from vidtok_kit.convert.checkpoint import file_sha256
    from vidtok_kit.recipe import dump_recipe

    output = Path(output)
    if precision not in PRECISIONS:
        raise ExportError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and not trt:
        raise ExportError(f"--precision {precision} applies to TensorRT engines (add --trt); ONNX graphs are always fp32")
    if not (onnx or trt):
        raise ExportError("nothing to export: pass --onnx and/or --trt")
    if tolerance is not None and not tolerance >= 0:
        raise ExportError(f"--tolerance must be >= 0, got {tolerance}")
    from vidtok_kit.export.onnx import check_options

    check_options(opset=opset, exporter=exporter)
    # the shared output policy: a file where the folder should go, or a folder nobody may write to
    check_output(output, kind="dir", what="-o")
    if output.exists() and not force and any(output.iterdir()):
        raise ExportError(f"{output} exists and is not empty; choose another -o or pass --force to replace it")
    onnx_mod = require_onnx()
    ort = require_onnxruntime()
    trt_mod = require_tensorrt() if trt else None

    model, recipe = _load(recipe, checkpoint, overrides)
    profile = shapes if isinstance(shapes, ShapeProfile) else (
        parse_shapes(shapes, batch=batch or (1, 1, 2)) if shapes else default_profile(model, recipe)
    )
    if batch is not None:
        profile = profile._replace(batch=batch)
    profile.validate(model)

    from vidtok_kit.export.graphs import graph_plan

    graphs = graph_plan(model, stream_chunk=stream_chunk if model.mode.causal else None)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    fp32 = _tolerance("fp32", tolerance)
    try:
        entries = {g.name: _export_graph(g, tmp, profile, opset=opset, exporter=exporter, tolerance=fp32, log=log)
                   for g in graphs}
        engines: dict[str, Any] = {}
        if trt_mod is not None:
            from vidtok_kit.export.tensorrt import build_and_check

            engines = build_and_check(
                graphs, entries, tmp, precision=precision, workspace_gb=workspace_gb,
                timing_cache=Path(timing_cache) if timing_cache else None, inputs_at=_inputs_at,
                graph_point=_graph_point, reference=_reference, profile_points=profile.points(), seed=_TRACE_SEED,
                tolerance=_tolerance(precision, tolerance), log=log,
            )
        for entry in (*entries.values(), *engines.values()):
            entry["sha256"] = file_sha256(tmp / entry["file"])
        manifest = _manifest(model, recipe, checkpoint, profile, entries, engines, exporter=exporter, opset=opset,
                             precision=precision, stream_chunk=stream_chunk, onnx_mod=onnx_mod, ort=ort,
                             tolerance={"onnxruntime": fp32.rel, "tensorrt": _tolerance(precision, tolerance).rel if trt else None},
                             dump_recipe=dump_recipe, file_sha256=file_sha256)
        write_manifest(tmp, manifest)
        _publish(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {output} ({len(entries)} graphs{f', {len(engines)} engines' if engines else ''})")
    return manifest


def _export_graph(graph: Any, tmp: Path, profile: ShapeProfile, *, opset: int, exporter: str, tolerance: Tolerance,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """Export one graph into ``tmp``, check it, compare ONNX Runtime with PyTorch; its manifest entry."""
    import torch
    from vidtok_kit.export.onnx import check_onnx, export_onnx, ort_session, run_session

    path = tmp / f"{graph.name}.onnx"
    trace_point = _graph_point(graph, profile.point("opt"), "opt")
    # batch >= 2 in the trace, so no exporter can mistake the batch dim for a constant 1
    example = _inputs_at(graph, trace_point._replace(batch=max(2, trace_point.batch)), _TRACE_SEED)
    log(f"[{graph.name}] exporting ({exporter}, opset {opset})")
    export_onnx(graph, path, example, opset=opset, exporter=exporter)
    ops = check_onnx(path, graph_name=graph.name)
    session = ort_session(path, threads=torch.get_num_threads())
    shapes_in: dict[str, dict[str, list[int]]] = {s.name: {} for s in graph.inputs}
    shapes_out: dict[str, dict[str, list[int]]] = {s.name: {} for s in graph.outputs}
    reports: dict[str, Any] = {}
    seen: dict[Point, str] = {}
    for i, which in enumerate(POINTS):
        point = _graph_point(graph, profile.point(which), which)
        if point in seen:  # e.g. a fixed-shape export: the same check again would prove nothing new
            reports[which] = reports[seen[point]]
            for shapes in (*shapes_in.values(), *shapes_out.values()):
                shapes[which] = shapes[seen[point]]
            continue
        seen[point] = which
        inputs = _inputs_at(graph, point, _TRACE_SEED + 1 + i)
        refs = _numpy(_reference(graph, inputs))
        outs = run_session(session, dict(zip((s.name for s in graph.inputs), _numpy(inputs))))
        report = check_outputs([s.name for s in graph.outputs], refs, outs, tolerance, margin=rounding_margin(graph, inputs))
        raise_on_failure(graph.name, "ONNX Runtime", which, report)
        reports[which] = report
        for spec, t in zip(graph.inputs, inputs):
            shapes_in[spec.name][which] = list(t.shape)
        for spec, r in zip(graph.outputs, refs):
            shapes_out[spec.name][which] = list(r.shape)
    worst = max(v.get("rel", 0.0) for r in reports.values() for v in r.values() if isinstance(v, dict))
    log(f"[{graph.name}] onnx.checker ok, TensorRT ops ok, ONNX Runtime parity ok (max rel error {worst:.2e})")
    return {
        "file": path.name,
        "sha256": None,
        "doc": graph.doc,
        "notes": graph.notes,
        "inputs": [_spec_entry(s, shapes_in[s.name]) for s in graph.inputs],
        "outputs": [_spec_entry(s, shapes_out[s.name]) for s in graph.outputs],
        "ops": ops,
        "parity": {"onnxruntime": reports},
    }


def _tolerance(precision: str, rel: float | None) -> Tolerance:
    base = TOLERANCES[precision]
    return base if rel is None else Tolerance(rel=rel, index_margin=base.index_margin)


def _load(recipe: Any, checkpoint: Any, overrides: Sequence[str]) -> tuple[Any, Any]:
    """The eval-mode fp32 model and its resolved recipe (from the file, or stored in our checkpoint)."""
    from vidtok_kit.loading import load_model

    model, recipe, _ = load_model(recipe, checkpoint, overrides=overrides)
    return model.float().eval(), recipe


def _publish(tmp: Path, output: Path) -> None:
    """Rename the finished temp dir onto ``output``; an old one is moved aside first, then deleted."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{datetime.datetime.now().strftime('%H%M%S%f')}")
        output.rename(old)
    tmp.rename(output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _manifest(model: Any, recipe: Any, checkpoint: Any, profile: ShapeProfile, entries: dict[str, Any],
              engines: dict[str, Any], **kw: Any) -> dict[str, Any]:
    import torch

    from vidtok_kit import __version__
    from vidtok_kit.model import frames as frame_rules

    cfg, tdf, mode = model.config, model.temporal_factor, model.mode
    discrete = model.discrete
    return {
        "format": FORMAT,
        "version": VERSION,
        "vidtok_kit_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (3.10)
        "recipe": {"name": getattr(recipe, "name", ""), "toml": kw["dump_recipe"](recipe)},
        "checkpoint": None if checkpoint is None else {"path": str(checkpoint), "sha256": kw["file_sha256"](checkpoint)},
        "model": {
            "mode": mode.value, "causal": mode.causal, "discrete": discrete, "temporal_factor": tdf,
            "spatial_factor": model.spatial_factor, "in_channels": cfg.in_channels, "out_channels": cfg.out_channels,
            "z_channels": cfg.z_channels, "regularizer": cfg.regularizer.kind,
            "codebook_size": model.regularizer.codebook_size if discrete else None,
            "index_dtype": str(model.regularizer.index_dtype).removeprefix("torch.") if discrete else None,
        },
        "rules": {
            "frames": frame_rules.allowed_frames(tdf=tdf, mode=mode),
            "size_multiple": model.spatial_factor,
            "latent_frames": "(frames + front padding) / " + str(tdf),
            "decoded_frames": f"{tdf} * latent_frames",
            "keep_last_frames": entries["decode"]["notes"]["keep_last_frames"],
        },
        "export": {
            "exporter": kw["exporter"], "opset": kw["opset"], "precision": kw["precision"], "tolerance": kw["tolerance"],
            "stream_chunk": kw["stream_chunk"] if mode.causal else None, "torch": torch.__version__,
            "onnx": kw["onnx_mod"].__version__, "onnxruntime": kw["ort"].__version__,
        },
        "shapes": profile.as_dict(),
        "graphs": entries,
        "engines": engines,
    }
