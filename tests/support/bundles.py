"""Tiny but real bundles for tests: ONNX graphs built with onnx.helper (no torch, no training), loaded by
the real ONNX Runtime through the real bundle contract. Fast enough for any test.

- `make_bundle`: the original uint8 image bundle (mean colour -> linear -> softmax), weights fixed.
- `make_color_bundle`: an image bundle whose class i is "channel i dominates" (red/green/blue), so a
  video of coloured frames gives predictable, confident labels.
- `make_audio_bundle`: a float32 waveform bundle whose classes follow loudness (quiet vs loud).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from edge.core.bundle import write_labels, write_manifest


def _save(nodes: list, name: str, inputs: list, outputs: list, initializers: list, path: Path) -> None:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


def tiny_image_model(path: Path, classes: int, size: int = 8, weights: np.ndarray | None = None) -> None:
    """uint8 NHWC image -> mean colour -> linear -> softmax."""
    w = weights if weights is not None else np.linspace(-1, 1, 3 * classes).reshape(3, classes)
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])
    w_t = helper.make_tensor("w", TensorProto.FLOAT, [3, classes], np.asarray(w, np.float32).ravel().tolist())
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    nodes = [
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    _save(nodes, "tiny_image", [x], [y], [w_t, axes], path)


def _image_manifest(root: Path, labels: Sequence[str], size: int) -> None:
    write_labels(root / "labels.txt", list(labels))
    write_manifest(
        root,
        {
            "task": "image",
            "labels": list(labels),
            "input": {"name": "image", "dtype": "uint8", "shape": [-1, size, size, 3]},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, len(labels)]},
            "preprocessing": {"resize": "center_crop_square", "size": [size, size], "color": "RGB"},
            "variants": {"fp32": "model.onnx"},
        },
    )


def make_bundle(root: Path, labels: list[str], size: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tiny_image_model(root / "model.onnx", len(labels), size)
    _image_manifest(root, labels, size)
    return root


def make_color_bundle(root: Path, labels: Sequence[str] = ("red", "green", "blue"), size: int = 8) -> Path:
    """Class i wins when colour channel i (R, G, B) dominates the frame; up to three labels."""
    if not 2 <= len(labels) <= 3:
        raise ValueError("a colour bundle has 2 or 3 labels (one per RGB channel)")
    root.mkdir(parents=True, exist_ok=True)
    weights = np.eye(3, dtype=np.float32)[:, : len(labels)] * 0.1  # 0.1 per grey level: confident on pure colours
    tiny_image_model(root / "model.onnx", len(labels), size, weights)
    _image_manifest(root, labels, size)
    return root


def make_audio_bundle(root: Path, labels: Sequence[str] = ("quiet", "loud"), sample_rate: int = 16000, window_s: float = 0.5, hop_s: float = 0.25) -> Path:
    """float32 [N, window] waveform -> mean |x| -> linear -> softmax: "loud" wins above ~0.05 mean level."""
    if len(labels) != 2:
        raise ValueError("the audio test bundle has exactly two labels: quiet, loud")
    root.mkdir(parents=True, exist_ok=True)
    window = int(sample_rate * window_s)
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["N", window])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [-100.0, 100.0])
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [5.0, -5.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Abs", ["waveform"], ["a"]),
        helper.make_node("ReduceMean", ["a", "axes"], ["level"], keepdims=1),
        helper.make_node("MatMul", ["level", "w"], ["lw"]),
        helper.make_node("Add", ["lw", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    _save(nodes, "tiny_audio", [x], [y], [w, b, axes], root / "model.onnx")
    write_labels(root / "labels.txt", list(labels))
    write_manifest(
        root,
        {
            "task": "audio",
            "labels": list(labels),
            "input": {"name": "waveform", "dtype": "float32", "shape": [-1, window]},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, 2]},
            "preprocessing": {"sample_rate": sample_rate, "window_samples": window, "hop_samples": int(sample_rate * hop_s)},
            "variants": {"fp32": "model.onnx"},
        },
    )
    return root
