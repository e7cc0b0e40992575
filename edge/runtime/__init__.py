"""Loading model bundles and running them with ONNX Runtime."""
