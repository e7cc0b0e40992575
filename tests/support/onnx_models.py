"""Tiny but real ONNX bundles for tests: graphs built with onnx.helper (no torch, no training), loaded by the
real ONNX Runtime through the real bundle contract, with answers predictable enough to assert labels. Fast
enough for any test; reusable by other engineers' tests.

Image bundles (uint8 NHWC -> mean colour -> linear -> softmax):
- `make_bundle`: fixed weights, any labels (8x8 input).
- `make_color_bundle`: class i is "colour channel i dominates" (red/green/blue; 8x8), so a video of coloured
  frames gives predictable, confident labels.
- `color_bundle`: red vs blue (16x16).
Audio bundles (float32 waveform windows):
- `make_audio_bundle`: classes follow loudness (quiet vs loud).
- `tone_bundle`: a low tone from a high one (share of energy in the high band).
And the inputs to feed them: `tone` (a sine wave), `color_video` (a real video file of solid colours).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from edge.core.bundle import write_labels, write_manifest

COLOR_WEIGHTS = np.array([[0.1, -0.1], [0.0, 0.0], [-0.1, 0.1]], dtype=np.float32)  # R -> red, B -> blue


def _save(nodes: list, name: str, inputs: list, outputs: list, initializers: list, path: Path) -> None:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


# ---------------------------------------------------------------------------------------------------
# Image bundles


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


def color_image_model(path: Path, size: int = 16) -> None:
    """uint8 NHWC -> mean colour -> [red, blue] softmax: a red frame is 'red', a blue frame 'blue'."""
    tiny_image_model(path, 2, size, COLOR_WEIGHTS)


def _image_manifest(root: Path, labels: Sequence[str], size: int, classes: int | None = None) -> None:
    write_labels(root / "labels.txt", list(labels))
    write_manifest(
        root,
        {
            "task": "image",
            "labels": list(labels),
            "input": {"name": "image", "dtype": "uint8", "shape": [-1, size, size, 3]},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, classes if classes is not None else len(labels)]},
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


def color_bundle(root: Path, size: int = 16, labels: Sequence[str] = ("red", "blue")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    color_image_model(root / "model.onnx", size)
    _image_manifest(root, labels, size, classes=2)
    return root


# ---------------------------------------------------------------------------------------------------
# Audio bundles


def _audio_manifest(root: Path, labels: Sequence[str], window: int, preprocessing: dict[str, Any]) -> None:
    write_labels(root / "labels.txt", list(labels))
    write_manifest(
        root,
        {
            "task": "audio",
            "labels": list(labels),
            "input": {"name": "waveform", "dtype": "float32", "shape": [-1, window]},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, 2]},
            "preprocessing": preprocessing,
            "variants": {"fp32": "model.onnx"},
        },
    )


def make_audio_bundle(root: Path, labels: Sequence[str] = ("quiet", "loud"), sample_rate: int = 16000, window_s: float = 0.5,
                      hop_s: float = 0.25) -> Path:
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
    _audio_manifest(root, labels, window, {"sample_rate": sample_rate, "window_samples": window, "hop_samples": int(sample_rate * hop_s)})
    return root


def tone_audio_model(path: Path, window: int) -> None:
    """float32 [N, window] -> share of energy in the high band (first difference vs signal energy) ->
    [low, high] softmax: a 300 Hz tone is 'low', a 4 kHz tone at 16 kHz is 'high'."""
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["N", window])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    inits = [
        helper.make_tensor("s0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("s1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("e_last", TensorProto.INT64, [1], [window - 1]),
        helper.make_tensor("e_all", TensorProto.INT64, [1], [window]),
        helper.make_tensor("ax1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-8]),
        helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [-10.0, 10.0]),
        helper.make_tensor("b", TensorProto.FLOAT, [2], [10.0, -10.0]),
    ]
    nodes = [
        helper.make_node("Slice", ["waveform", "s1", "e_all", "ax1"], ["later"]),
        helper.make_node("Slice", ["waveform", "s0", "e_last", "ax1"], ["earlier"]),
        helper.make_node("Sub", ["later", "earlier"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["diff2"]),
        helper.make_node("ReduceMean", ["diff2", "ax1"], ["e_high"], keepdims=1),
        helper.make_node("Mul", ["waveform", "waveform"], ["x2"]),
        helper.make_node("ReduceMean", ["x2", "ax1"], ["e_all_mean"], keepdims=1),
        helper.make_node("Add", ["e_all_mean", "eps"], ["e_total"]),
        helper.make_node("Div", ["e_high", "e_total"], ["ratio"]),
        helper.make_node("MatMul", ["ratio", "w"], ["wx"]),
        helper.make_node("Add", ["wx", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    _save(nodes, "tiny_tone", [x], [y], inits, path)


def tone_bundle(root: Path, sample_rate: int = 16000, window: int = 8000, hop: int = 4000, labels: Sequence[str] = ("low", "high")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tone_audio_model(root / "model.onnx", window)
    _audio_manifest(root, labels, window, {"sample_rate": sample_rate, "window_samples": window, "hop_samples": hop, "channels": 1,
                                           "front_end": "test: band energy ratio"})
    return root


# ---------------------------------------------------------------------------------------------------
# Inputs


def tone(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def color_video(path: Path, colors: Sequence[tuple[int, int, int]], frames_each: int = 10, fps: float = 30.0,
                size: tuple[int, int] = (64, 48)) -> Path:
    """Writes a real video file with cv2.VideoWriter: `frames_each` frames of each BGR colour in turn."""
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for color in colors:
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:] = color
        for _ in range(frames_each):
            writer.write(frame)
    writer.release()
    return path
