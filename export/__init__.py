"""Export subsystem: ONNX / TensorRT lowering of the tokenizer (import name ``vidtok_kit.export``)."""
