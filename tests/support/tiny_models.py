"""Tiny but real ONNX bundles (built with onnx.helper, no torch) whose answers are predictable, so
pipeline tests can assert labels: an image model that tells red from blue, an audio model that tells a
low tone from a high one. Reusable by other engineers' tests."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from edge.core.bundle import write_labels, write_manifest


def _save(nodes: list, inputs: list, outputs: list, initializers: list, path: Path) -> None:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def color_image_model(path: Path, size: int = 16) -> None:
    """uint8 NHWC -> mean colour -> [red, blue] softmax: a red frame is 'red', a blue frame 'blue'."""
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [0.1, -0.1, 0.0, 0.0, -0.1, 0.1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    nodes = [
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    _save(nodes, [x], [y], [w, axes], path)


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
    _save(nodes, [x], [y], inits, path)


def color_bundle(root: Path, size: int = 16, labels: Sequence[str] = ("red", "blue")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    color_image_model(root / "model.onnx", size)
    write_labels(root / "labels.txt", list(labels))
    write_manifest(
        root,
        {
            "task": "image",
            "labels": list(labels),
            "input": {"name": "image", "dtype": "uint8", "shape": [-1, size, size, 3]},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, 2]},
            "preprocessing": {"resize": "center_crop_square", "size": [size, size], "color": "RGB"},
            "variants": {"fp32": "model.onnx"},
        },
    )
    return root


def tone_bundle(root: Path, sample_rate: int = 16000, window: int = 8000, hop: int = 4000, labels: Sequence[str] = ("low", "high")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tone_audio_model(root / "model.onnx", window)
    write_labels(root / "labels.txt", list(labels))
    write_manifest(
        root,
        {
            "task": "audio",
            "labels": list(labels),
            "input": {"name": "waveform", "dtype": "float32", "shape": [-1, window]},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, 2]},
            "preprocessing": {"sample_rate": sample_rate, "window_samples": window, "hop_samples": hop, "channels": 1, "front_end": "test: band energy ratio"},
            "variants": {"fp32": "model.onnx"},
        },
    )
    return root


def tone(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def color_video(path: Path, colors: Sequence[tuple[int, int, int]], frames_each: int = 10, fps: float = 30.0, size: tuple[int, int] = (64, 48)) -> Path:
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
