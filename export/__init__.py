"""Export subsystem: ONNX / TensorRT lowering of a tokenizer, checked against PyTorch (``vidtok_kit.export``).

Entry points: ``vidtok-kit export`` (:mod:`vidtok_kit.export.commands`, added through the
``vidtok_kit_add_commands`` hook like any plugin command), :func:`vidtok_kit.export.pipeline.export_tokenizer`
for library use, and :mod:`vidtok_kit.runtime` to run an export. Heavy dependencies (onnx,
onnxruntime, tensorrt) are optional extras imported lazily, so importing this package is cheap.
"""

from __future__ import annotations

__all__: list[str] = []
