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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidtok_kit.export.checkplan import (
    Check,
    CostModel,
    check_plan,
    full_shape,
    graph_point,
    named_sizes,
    trace_point,
)
from vidtok_kit.export.deps import ExportError, require_onnx, require_onnxruntime, require_tensorrt
from vidtok_kit.export.manifest import FORMAT, VERSION, write_manifest
from vidtok_kit.export.parity import TOLERANCES, Tolerance, check_outputs, raise_on_failure, rounding_margin
from vidtok_kit.export.shapes import POINTS, Point, ShapeProfile, default_profile, parse_shapes

from vidtok_kit.io.outputs import check_output

__all__ = ["PRECISIONS", "export_tokenizer"]

PRECISIONS = ("fp32", "fp16", "bf16")
_TRACE_SEED = 1234


def _graph_point(graph: Any, point: Point, which: str) -> Point:
    return graph_point(graph, point, which)


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
    full_parity: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Export a tokenizer into the directory ``output`` and return its manifest.

    :param recipe: recipe path or object (None: the one stored in ``checkpoint``).
    :param shapes: ``"TxHxW,TxHxW,TxHxW"`` (min,opt,max) or a :class:`ShapeProfile`; default from the recipe.
    :param batch: min,opt,max batch (default 1,1,2).
    :param stream_chunk: latents per streaming step for causal models (None: no stream graphs).
    :param precision: of the TensorRT engines; ONNX graphs are fp32 and checked at fp32 tolerance,
        and with ``"fp16"`` the graphs that run the encoder or decoder are also written in fp16
        (``NAME.fp16.onnx``, for GPU providers: ``load(dir, backend="onnx", dtype="fp16")``),
        checked at fp16 tolerance.
    :param tolerance: max error relative to the output range, overriding the precision's default
        (fp32 1e-4, fp16 1e-2, bf16 3e-2); it applies to ONNX Runtime and TensorRT alike.
    :param full_parity: check every graph at the real min / opt / max sizes; by default the max
        point (and the step graphs' opt point) run at a reduced spatial size
        (:mod:`vidtok_kit.export.checkplan`).
    :raises ExportError: bad options, a missing dependency, a failed check or parity beyond tolerance.
    """

    from vidtok_kit.convert.checkpoint import file_sha256
    from vidtok_kit.recipe import dump_recipe

    output = Path(output)
    if precision not in PRECISIONS:
        raise ExportError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not trt:
        raise ExportError("--precision bf16 applies to TensorRT engines (add --trt); ONNX graphs are fp32, or fp16 copies with --precision fp16")
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

    started = time.perf_counter()
    model, recipe = _load(recipe, checkpoint, overrides)
    profile = shapes if isinstance(shapes, ShapeProfile) else (
        parse_shapes(shapes, batch=batch or (1, 1, 2)) if shapes else default_profile(model, recipe)
    )
    if batch is not None:
        profile = profile._replace(batch=batch)
    profile.validate(model)

    from vidtok_kit.export.graphs import HALF_GRAPHS, graph_plan, half_network

    chunk = stream_chunk if model.mode.causal else None
    # the exported copy computes with the fast forms; parity is always against the reference model
    exported = _fast_copy(model)
    graphs = graph_plan(exported, stream_chunk=chunk)
    references = {g.name: g for g in graph_plan(model, stream_chunk=chunk)}
    # fp16 copies for GPU providers: the same graphs with the encoder / decoder computing in fp16
    halves = {g.name: g for g in graph_plan(half_network(exported)) if g.name in HALF_GRAPHS} if (
        onnx and precision == "fp16") else {}
    sf = model.spatial_factor
    plans = {g.name: check_plan(g, profile, sf, full=full_parity) for g in graphs}
    cost = CostModel(model, recipe, profile)
    # whole-clip decoders take the encode graph's reference latents as their inputs (checked first)
    encoded = any(g.name == "encode" for g in graphs)
    checked = [*graphs, *halves.values()]
    estimate = sum(cost.seconds(g, c.point, cached_encode=encoded) for g in checked for c in plans[g.name])
    runs = sum(len(plans[g.name]) for g in checked)
    log(f"parity checks will take about {_minutes(estimate)} on this CPU ({runs} runs over "
        f"{len(checked)} graphs{f' ({len(halves)} of them fp16)' if halves else ''}, "
        f"{'full sizes' if full_parity else 'max at a reduced size; --full-parity for all sizes'})"
        + (", plus exporting and opening each graph" if graphs else ""))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    fp32 = _tolerance("fp32", tolerance)
    try:
        entries = {}
        done = _References()
        for i, g in enumerate(graphs, 1):
            entries[g.name] = _export_graph(g, references[g.name], tmp, profile, plans[g.name], opset=opset,
                                            exporter=exporter, tolerance=fp32, log=log, sf=sf,
                                            step=f"{i}/{len(graphs)}", done=done)
            if g.name in halves:
                half = _export_graph(halves[g.name], references[g.name], tmp, profile, plans[g.name], opset=opset,
                                     exporter=exporter, tolerance=_tolerance("fp16", tolerance), log=log, sf=sf,
                                     step=f"{i}/{len(graphs)}", done=done, variant="fp16")
                entries[g.name]["fp16"] = {k: half[k] for k in ("file", "sha256", "ops", "parity")}
        log(f"ONNX export and checks took {time.perf_counter() - started:.0f} s")
        engines: dict[str, Any] = {}
        if trt_mod is not None:
            from vidtok_kit.export.tensorrt import build_and_check

            engines = build_and_check(
                list(references.values()), entries, tmp, precision=precision, workspace_gb=workspace_gb,
                timing_cache=Path(timing_cache) if timing_cache else None, inputs_at=_inputs_at,
                graph_point=_graph_point, reference=_reference, profile_points=profile.points(), seed=_TRACE_SEED,
                tolerance=_tolerance(precision, tolerance), log=log,
            )
        for entry in (*entries.values(), *(e["fp16"] for e in entries.values() if "fp16" in e), *engines.values()):
            entry["sha256"] = file_sha256(tmp / entry["file"])
        manifest = _manifest(model, recipe, checkpoint, profile, entries, engines, exporter=exporter, opset=opset,
                             precision=precision, full_parity=full_parity, arithmetic=_arithmetic(exported), stream_chunk=stream_chunk, onnx_mod=onnx_mod, ort=ort,
                             tolerance={"onnxruntime": fp32.rel, "tensorrt": _tolerance(precision, tolerance).rel if trt else None,
                                        **({"onnxruntime_fp16": _tolerance("fp16", tolerance).rel} if halves else {})},
                             dump_recipe=dump_recipe, file_sha256=file_sha256)
        write_manifest(tmp, manifest)
        _publish(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {output} ({len(entries)} graphs{f', {len(engines)} engines' if engines else ''})")
    return manifest


class _References:
    """PyTorch outputs of the last check of each graph, so a check whose reference was already run
    on equal inputs does not run the model again: a graph whose reference is another's
    (:attr:`Graph.reference_of`), or a graph's fp16 copy checked at its fp32 twin's points."""

    def __init__(self) -> None:
        #: (graph, point) -> (inputs, reference outputs, the regularizer's input or None)
        self.last: dict[tuple[str, Point], tuple[tuple[Any, ...], list[Any], Any]] = {}
        #: the regularizer's input in the last reference run of an encoder graph (None: not captured)
        self.encoder_output: Any = None

    def outputs(self, graph: Any, point: Point, inputs: tuple[Any, ...]) -> list[Any]:
        import torch

        target, target_inputs = graph.reference_of(inputs) if graph.reference_of is not None else (graph.name, inputs)
        hit = self.last.get((target, point))
        if hit is not None and len(hit[0]) == len(target_inputs) and all(
            a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(hit[0], target_inputs)
        ):
            self.encoder_output = hit[2]
            return hit[1]
        captured: list[Any] = []
        hook = None
        if graph.encoder:  # the regularizer's input, for the rounding margins of the index check
            hook = graph.module.model.regularizer.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            refs = _reference(graph, inputs)
        finally:
            if hook is not None:
                hook.remove()
        self.encoder_output = captured[0] if len(captured) == 1 else None
        self.last[(graph.name, point)] = (inputs, refs, self.encoder_output)
        if graph.remember is not None:
            graph.remember(inputs, refs)
        return refs


def _export_graph(graph: Any, reference: Any, tmp: Path, profile: ShapeProfile, checks: list[Check], *, opset: int,
                  exporter: str, tolerance: Tolerance, log: Callable[[str], None], sf: int, step: str,
                  done: _References, variant: str = "fp32") -> dict[str, Any]:
    """Export one graph into ``tmp``, check it, compare ONNX Runtime with the reference PyTorch model.

    ``graph`` is the exported (fast-arithmetic) wrapper, ``reference`` the same graph of the
    reference model: it makes the inputs and the expected outputs. ``variant``: ``"fp16"`` for the
    fp16 copy of a graph (file ``NAME.fp16.onnx``). Returns the manifest entry.
    """
    import torch
    from vidtok_kit.export.onnx import check_onnx, export_onnx, ort_session, run_session

    path = tmp / (f"{graph.name}.onnx" if variant == "fp32" else f"{graph.name}.{variant}.onnx")
    step = step if variant == "fp32" else f"{step} {variant}"
    started = time.perf_counter()
    # batch >= 2 in the trace, so no exporter can mistake the batch dim for a constant 1; a small
    # spatial size that no check uses (see checkplan), so a baked-in size fails parity
    example = _inputs_at(reference, trace_point(graph, profile, sf), _TRACE_SEED)
    log(f"[{step} {graph.name}] exporting ({exporter}, opset {opset})")
    export_onnx(graph, path, example, opset=opset, exporter=exporter)
    ops = check_onnx(path, graph_name=graph.name)
    session = ort_session(path, threads=torch.get_num_threads())
    log(f"[{step} {graph.name}] exported, onnx.checker and TensorRT ops ok ({time.perf_counter() - started:.0f} s)")
    names_in = [s.name for s in graph.inputs]
    shapes_in: dict[str, dict[str, list[int]]] = {s.name: {} for s in graph.inputs}
    shapes_out: dict[str, dict[str, list[int]]] = {s.name: {} for s in graph.outputs}
    reports: dict[str, Any] = {}
    for check in checks:
        which, point = check.which, check.point
        tic = time.perf_counter()
        real = graph_point(graph, profile.point(which), which)
        inputs = _inputs_at(reference, point, _TRACE_SEED + 1 + POINTS.index(which))
        refs = _numpy(done.outputs(reference, point, inputs))
        outs = run_session(session, dict(zip(names_in, _numpy(inputs))))
        report = check_outputs([s.name for s in graph.outputs], refs, outs, tolerance,
                               margin=rounding_margin(reference, inputs, done.encoder_output))
        raise_on_failure(graph.name, "ONNX Runtime", which, report)
        report["checked_at"] = point.describe()
        report["reduced"] = check.reduced
        reports[which] = report
        shapes = [tuple(t.shape) for t in inputs] + [tuple(r.shape) for r in refs]
        sizes = named_sizes(graph, shapes, real, sf) if check.reduced else None
        for spec, shape in zip((*graph.inputs, *graph.outputs), shapes):
            table = shapes_in if spec in graph.inputs else shapes_out
            table[spec.name][which] = full_shape(spec.dims, sizes) if sizes is not None else list(shape)
        worst = max((v.get("rel", 0.0) for v in report.values() if isinstance(v, dict)), default=0.0)
        log(f"[{step} {graph.name}] parity at {which} {point.describe()}{' (reduced from ' + real.describe() + ')' if check.reduced else ''}"
            f": ok, max rel error {worst:.1e} ({time.perf_counter() - tic:.0f} s)")
    for which in POINTS:  # a profile point equal to an earlier one (a fixed-shape export) shares its check
        if which not in reports:
            real = graph_point(graph, profile.point(which), which)
            first = next(w for w in reports if graph_point(graph, profile.point(w), w) == real)
            reports[which] = reports[first]
            for table in (*shapes_in.values(), *shapes_out.values()):
                table[which] = table[first]
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


def _fast_copy(model: Any) -> Any:
    """A copy of ``model`` with the fast arithmetic of every module whose fast form exports.

    :class:`~vidtok_kit.model.layers.TimeConv`'s fast form stays off: it is a memory-layout trick
    for channels-last PyTorch clips (the same MACs as the reference conv), ONNX has no memory
    formats, and its reshapes would freeze the traced frame count. The spatial upsampler's
    sub-pixel form (2.25x fewer MACs) and the AlphaBlender low-rate form (half the conv MACs)
    export as plain operators (``functional`` interleave, :func:`blend_up_from_tap_images`).
    """
    import copy

    from vidtok_kit.model.layers import TimeConv
    from vidtok_kit.model.shortcuts import set_arithmetic

    fast = copy.deepcopy(model)
    set_arithmetic(fast, "fast")
    for module in fast.modules():
        if isinstance(module, TimeConv):
            module.fast_arithmetic = False
    return fast


def _arithmetic(model: Any) -> dict[str, list[str]]:
    """Module classes of the exported graphs by arithmetic, for the manifest."""
    from vidtok_kit.model.shortcuts import arithmetic_of

    kinds: dict[str, set[str]] = {"fast": set(), "reference": set()}
    modules = dict(model.named_modules())
    for name, kind in arithmetic_of(model).items():
        kinds[kind].add(type(modules[name]).__name__)
    return {k: sorted(v) for k, v in kinds.items()}


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


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
            "arithmetic": kw["arithmetic"], "full_parity": kw["full_parity"],
            "onnx": kw["onnx_mod"].__version__, "onnxruntime": kw["ort"].__version__,
        },
        "shapes": profile.as_dict(),
        "graphs": entries,
        "engines": engines,
    }
