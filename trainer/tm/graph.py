"""ONNX building blocks shared by the TFLite and the Keras/tfjs-layers converters.

Both produce the bundle's image contract (docs/bundle.md): input `image` uint8 [N, H, W, 3] RGB 0-255, output
`probabilities` float32 [N, classes]. Teachable Machine's own preprocessing therefore lives in the graph, as it
does for our own bundles: the device only centre-crops and resizes (edge/core/images.py, `center_crop_square`,
which is what Teachable Machine does), and the graph scales the pixels exactly as TM does before its network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # as trainer/export.py: ONNX Runtime on the device supports it, and it has per-axis DequantizeLinear
INPUT_NAME = "image"
WAVEFORM_NAME = "waveform"  # sound bundles: mono float32 samples (docs/bundle.md)
OUTPUT_NAME = "probabilities"
# Teachable Machine's image normalisation ((x / 127.5) - 1, teachable-mobilenet.ts), for float exports; a
# quantized export carries its own input scale and zero point instead, read from the file.
TM_PIXEL_DIVISOR = 127.5
TM_NORMALIZATION = "in_graph: x / 127.5 - 1 (Teachable Machine's [-1, 1] scaling)"
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)


@dataclass
class GraphBuilder:
    """Collects nodes and initializers under unique names, then makes the model."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _used: set[str] = field(default_factory=lambda: {INPUT_NAME, WAVEFORM_NAME, OUTPUT_NAME})

    def fresh(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c in "_./:-" else "_" for c in hint) or "t"
        name, n = base, 1
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def const(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        # np.ascontiguousarray would turn a 0-d scalar into shape [1]; Clip and per-tensor scales want scalars
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def tm_normalized_nchw(self, image: str) -> str:
        """uint8 NHWC pixels -> float NCHW in [-1, 1], computed as TM computes it (divide, then subtract)."""
        x = self.op("Cast", [image], "pixels_float", to=TensorProto.FLOAT)
        x = self.op("Div", [x, self.const(np.array(TM_PIXEL_DIVISOR, np.float32), "tm_divisor")], "pixels_scaled")
        x = self.op("Sub", [x, self.const(np.array(1.0, np.float32), "one")], "pixels_tm")
        return self.op("Transpose", [x], "pixels_nchw", perm=list(NHWC_TO_NCHW))

    def build(self, result: str, size: tuple[int, int], n_classes: int, graph_name: str, doc: str,
              waveform_samples: int | None = None) -> onnx.ModelProto:
        """The model: image input uint8 [N, H, W, 3] of `size`, or with `waveform_samples` float32 [N, samples]."""
        self.nodes.append(helper.make_node("Identity", [result], [OUTPUT_NAME], name=OUTPUT_NAME))
        height, width = size
        if waveform_samples is None:
            model_input = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", height, width, 3])
        else:
            model_input = helper.make_tensor_value_info(WAVEFORM_NAME, TensorProto.FLOAT, ["N", waveform_samples])
        graph = helper.make_graph(
            self.nodes,
            graph_name,
            [model_input],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", n_classes])],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeteach trainer import-tm",
                                  doc_string=doc)
        model.ir_version = 8  # what ONNX Runtime 1.18 (the oldest the device supports) reads
        onnx.checker.check_model(model, full_check=True)
        return model


def same_pads(in_hw: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int], dilations: tuple[int, int]) -> list[int]:
    """TensorFlow's "SAME" padding made explicit ([top, left, bottom, right]: the odd pixel goes at the end),
    from static sizes, so the graph does not depend on ONNX's auto_pad spelling of it."""
    begins, ends = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends
