"""A parsed TFLite image classifier (tflite_reader) -> an ONNX graph with the bundle's image contract.

Layout: TFLite is NHWC, ONNX convolutions are NCHW, so the pixels are transposed once after the input and
every 4-D tensor is held as NCHW from then on (paddings, reduction axes and reshapes are mapped).

Quantized exports (uint8 in and out, int8 inside) give two graphs:
- `quantized=True` (the bundle's int8 variant): weights stay int8 behind DequantizeLinear and every activation
  TFLite quantizes goes through QuantizeLinear -> DequantizeLinear with the file's own scale and zero point.
  That is the QDQ form ONNX Runtime fuses into its int8 kernels, and it rounds where LiteRT rounds, so the
  outputs agree with LiteRT's to about one quantization step.
- `quantized=False` (the fp32 variant when only the quantized file was exported): the same weights
  dequantized once, activations in float. Slightly more accurate than the quantized model, not identical to it.
The input's scale and zero point are always read from the file (1/127.5 and 127 in one export, 1/255 and 0
in another), never hard-coded; a float export takes TM's [-1, 1] scaling in the graph instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import tflite
from onnx import TensorProto

from trainer.tm.errors import TmImportError
from trainer.tm.graph import NCHW_TO_NHWC, NHWC_TO_NCHW, TM_NORMALIZATION, GraphBuilder, same_pads
from trainer.tm.tflite_reader import Quantization, TfModel, TfOp, TfTensor

_QUANT_DTYPES = (np.int8, np.uint8, np.int16)
_ONNX_INT = {np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8, np.int32: TensorProto.INT32, np.int16: TensorProto.INT16}


def input_normalization(model: TfModel) -> str:
    """What the graph does to the pixels, for the manifest."""
    tensor = model.tensors[model.inputs[0]]
    if tensor.quant is None:
        return TM_NORMALIZATION
    scale, zero = float(tensor.quant.scale[0]), int(tensor.quant.zero_point[0])
    return f"in_graph: (x - {zero}) * {scale:.8g} (the quantized export's own input scale and zero point)"


class _Converter:
    def __init__(self, model: TfModel, quantized: bool, where: str) -> None:
        self.model, self.quantized, self.where = model, quantized, where
        self.g = GraphBuilder()
        self.values: dict[int, str] = {}  # TFLite tensor index -> ONNX value name (4-D values are NCHW)
        self.handlers: dict[str, Callable[[TfOp], str]] = {
            "CONV_2D": self._conv,
            "DEPTHWISE_CONV_2D": self._conv,
            "PAD": self._pad,
            "ADD": self._add,
            "MEAN": self._mean,
            "FULLY_CONNECTED": self._fully_connected,
            "SOFTMAX": self._softmax,
            "QUANTIZE": self._passthrough,
            "DEQUANTIZE": self._passthrough,
            "RESHAPE": self._reshape,
        }

    # -- tensors ---------------------------------------------------------------------------------------
    def t(self, index: int) -> TfTensor:
        return self.model.tensors[index]

    def _fake_quant(self, value: str, tensor: TfTensor) -> str:
        """Rounds a float value to the tensor's quantization grid (int8 variant only)."""
        q = tensor.quant
        if not self.quantized or q is None or tensor.dtype not in _QUANT_DTYPES or q.scale.size != 1:
            return value
        scale = self.g.const(q.scale.reshape(()).astype(np.float32), f"{tensor.name}_scale")
        zero = self.g.const(q.zero_point.reshape(()).astype(tensor.dtype), f"{tensor.name}_zero_point")
        stored = self.g.op("QuantizeLinear", [value, scale, zero], f"{tensor.name}_q")
        return self.g.op("DequantizeLinear", [stored, scale, zero], f"{tensor.name}_dq")

    def value(self, index: int) -> str:
        if index in self.values:
            return self.values[index]
        tensor = self.t(index)
        if tensor.data is None:
            raise TmImportError(f"{self.where}: tensor {tensor.name!r} is used before any operator makes it; the model is damaged")
        perm = NHWC_TO_NCHW if tensor.data.ndim == 4 else None
        name = self.constant(tensor, perm)
        self.values[index] = name
        return name

    def constant(self, tensor: TfTensor, perm: tuple[int, ...] | None) -> str:
        """A constant as a float value: float data as is, quantized data dequantized (in the graph for the int8
        variant, so ONNX Runtime can run the int8 kernels; in numpy for the float one)."""
        assert tensor.data is not None
        data = tensor.data if perm is None else np.transpose(tensor.data, perm)
        q = tensor.quant
        if data.dtype == np.float16 or (q is None and data.dtype == np.float32):
            return self.g.const(data.astype(np.float32), tensor.name)
        if q is None:
            raise TmImportError(f"{self.where}: constant {tensor.name!r} is {data.dtype} without quantization parameters; "
                                "import-tm cannot interpret it")
        axis = perm.index(q.axis) if perm is not None else q.axis
        if not self.quantized:
            return self.g.const(_dequantize(data, q, axis), tensor.name)
        stored = self.g.const(data, f"{tensor.name}_int")
        per_channel = q.scale.size > 1
        scale = self.g.const(q.scale.astype(np.float32) if per_channel else q.scale.reshape(()), f"{tensor.name}_scale")
        zeros = q.zero_point.astype(data.dtype)
        zero = self.g.const(zeros if per_channel else zeros.reshape(()), f"{tensor.name}_zero_point")
        attrs = {"axis": axis} if per_channel else {}
        return self.g.op("DequantizeLinear", [stored, scale, zero], f"{tensor.name}_dq", **attrs)

    def rank(self, index: int) -> int:
        return len(self.t(index).shape)

    # -- operators -------------------------------------------------------------------------------------
    def _activation(self, value: str, fused: int, hint: str) -> str:
        act = tflite.ActivationFunctionType
        if fused == act.NONE:
            return value
        if fused == act.RELU:
            return self.g.op("Relu", [value], f"{hint}_relu")
        if fused in (act.RELU6, act.RELU_N1_TO_1):
            low, high = (0.0, 6.0) if fused == act.RELU6 else (-1.0, 1.0)
            return self.g.op("Clip", [value, self.g.const(np.array(low, np.float32), "clip_min"),
                                      self.g.const(np.array(high, np.float32), "clip_max")], f"{hint}_clip")
        if fused == act.TANH:
            return self.g.op("Tanh", [value], f"{hint}_tanh")
        raise TmImportError(f"{self.where}: fused activation {fused} is not supported by import-tm")

    def _conv(self, op: TfOp) -> str:
        x, w = self.t(op.inputs[0]), self.t(op.inputs[1])
        opts = op.options
        assert isinstance(opts, (tflite.Conv2DOptions, tflite.DepthwiseConv2DOptions))
        if w.data is None:
            raise TmImportError(f"{self.where}: {op.kind} with computed weights is not supported")
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        # TFLite: conv weights [out, kh, kw, in]; depthwise [1, kh, kw, in * multiplier]. ONNX: [out, in/group, kh, kw].
        weight = self.constant(w, (3, 0, 1, 2) if depthwise else (0, 3, 1, 2))
        kernel = (w.shape[1], w.shape[2])
        strides = (int(opts.StrideH()), int(opts.StrideW()))
        dilations = (int(opts.DilationHFactor()), int(opts.DilationWFactor()))
        hw = (x.shape[1], x.shape[2])
        pads = same_pads(hw, kernel, strides, dilations) if opts.Padding() == tflite.Padding.SAME else [0, 0, 0, 0]
        inputs = [self.value(op.inputs[0]), weight]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.value(op.inputs[2]))
        out = self.t(op.outputs[0])
        y = self.g.op("Conv", inputs, out.name, kernel_shape=list(kernel), strides=list(strides), dilations=list(dilations), pads=pads,
                      group=x.shape[3] if depthwise else 1)
        return self._activation(y, opts.FusedActivationFunction(), out.name)

    def _pad(self, op: TfOp) -> str:
        paddings = self.t(op.inputs[1]).data
        if paddings is None:
            raise TmImportError(f"{self.where}: PAD with computed paddings is not supported")
        paddings = paddings.reshape(-1, 2).astype(np.int64)
        if len(paddings) == 4:
            paddings = paddings[list(NHWC_TO_NCHW)]
        pads = np.concatenate([paddings[:, 0], paddings[:, 1]])
        return self.g.op("Pad", [self.value(op.inputs[0]), self.g.const(pads, "pads")], self.t(op.outputs[0]).name, mode="constant")

    def _add(self, op: TfOp) -> str:
        a, b = (self._broadcastable(i, op.inputs) for i in op.inputs[:2])
        opts = op.options
        y = self.g.op("Add", [a, b], self.t(op.outputs[0]).name)
        return self._activation(y, opts.FusedActivationFunction() if isinstance(opts, tflite.AddOptions) else 0, self.t(op.outputs[0]).name)

    def _broadcastable(self, index: int, operands: list[int]) -> str:
        """A 1-D constant added to an NHWC tensor broadcasts over channels; in NCHW it needs shape [C, 1, 1]."""
        tensor = self.t(index)
        if tensor.data is not None and tensor.data.ndim == 1 and any(self.rank(i) == 4 for i in operands if i != index):
            flat = self.value(index)
            return self.g.op("Reshape", [flat, self.g.const(np.array([-1, 1, 1], np.int64), "channel_shape")], f"{tensor.name}_c11")
        return self.value(index)

    def _mean(self, op: TfOp) -> str:
        axes_data = self.t(op.inputs[1]).data
        if axes_data is None:
            raise TmImportError(f"{self.where}: MEAN with computed axes is not supported")
        rank = self.rank(op.inputs[0])
        axes = [int(a) % rank for a in axes_data.reshape(-1)]
        if rank == 4:
            axes = [NHWC_TO_NCHW.index(a) for a in axes]
        opts = op.options
        keep = int(bool(opts.KeepDims())) if isinstance(opts, tflite.ReducerOptions) else 0
        return self.g.op("ReduceMean", [self.value(op.inputs[0])], self.t(op.outputs[0]).name, axes=sorted(axes), keepdims=keep)

    def _as_rows(self, index: int, features: int) -> str:
        """[N, features] in TFLite's (NHWC) element order, whatever the rank."""
        value = self.value(index)
        if self.rank(index) == 2:
            return value
        if self.rank(index) == 4:
            value = self.g.op("Transpose", [value], f"{self.t(index).name}_nhwc", perm=list(NCHW_TO_NHWC))
        return self.g.op("Reshape", [value, self.g.const(np.array([-1, features], np.int64), "rows")], f"{self.t(index).name}_rows")

    def _fully_connected(self, op: TfOp) -> str:
        w = self.t(op.inputs[1])
        if w.data is None or w.data.ndim != 2:
            raise TmImportError(f"{self.where}: FULLY_CONNECTED needs constant 2-D weights")
        opts = op.options
        assert isinstance(opts, tflite.FullyConnectedOptions)
        if opts.WeightsFormat() != 0:
            raise TmImportError(f"{self.where}: FULLY_CONNECTED with shuffled weights is not supported")
        inputs = [self._as_rows(op.inputs[0], w.shape[1]), self.constant(w, None)]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.value(op.inputs[2]))
        out = self.t(op.outputs[0])
        y = self.g.op("Gemm", inputs, out.name, transB=1)
        return self._activation(y, opts.FusedActivationFunction(), out.name)

    def _softmax(self, op: TfOp) -> str:
        x = self.value(op.inputs[0])
        opts = op.options
        beta = float(opts.Beta()) if isinstance(opts, tflite.SoftmaxOptions) else 1.0
        if beta != 1.0:
            x = self.g.op("Mul", [x, self.g.const(np.array(beta, np.float32), "beta")], "softmax_beta")
        return self.g.op("Softmax", [x], self.t(op.outputs[0]).name, axis=-1)

    def _passthrough(self, op: TfOp) -> str:
        # QUANTIZE / DEQUANTIZE change the storage, not the real value: the requantization is the
        # fake-quant applied to every op's output (int8 variant) and nothing in the float graph.
        return self.value(op.inputs[0])

    def _reshape(self, op: TfOp) -> str:
        out = self.t(op.outputs[0])
        value = self.value(op.inputs[0])
        if self.rank(op.inputs[0]) == 4:
            value = self.g.op("Transpose", [value], f"{out.name}_nhwc", perm=list(NCHW_TO_NHWC))
        shape = np.array([-1, *out.shape[1:]], np.int64)
        y = self.g.op("Reshape", [value, self.g.const(shape, "shape")], out.name)
        if len(out.shape) == 4:
            y = self.g.op("Transpose", [y], f"{out.name}_nchw", perm=list(NHWC_TO_NCHW))
        return y

    # -- the whole graph -------------------------------------------------------------------------------
    def _input(self) -> str:
        tensor = self.t(self.model.inputs[0])
        if tensor.dtype == np.float32:
            return self.g.tm_normalized_nchw("image")
        if tensor.dtype != np.uint8 or tensor.quant is None:
            raise TmImportError(f"{self.where}: input is {np.dtype(tensor.dtype).name}; import-tm reads float32 and uint8 "
                                "(quantized) image exports")
        scale = self.g.const(tensor.quant.scale.reshape(()).astype(np.float32), "input_scale")
        zero = self.g.const(tensor.quant.zero_point.reshape(()).astype(np.uint8), "input_zero_point")
        x = self.g.op("DequantizeLinear", ["image", scale, zero], "pixels_real")
        return self.g.op("Transpose", [x], "pixels_nchw", perm=list(NHWC_TO_NCHW))

    def convert(self) -> tuple[onnx.ModelProto, tuple[int, int], int]:
        tensor = self.t(self.model.inputs[0])
        if len(tensor.shape) != 4 or tensor.shape[3] != 3:
            raise TmImportError(f"{self.where}: input shape {list(tensor.shape)} is not an RGB image [1, H, W, 3]; import-tm reads "
                                "Teachable Machine image models (sound and pose models are not supported yet)")
        unknown = sorted(kind for kind in self.model.op_counts if kind not in self.handlers)
        if unknown:
            raise TmImportError(f"{self.where}: operator(s) {', '.join(unknown)} are not supported by import-tm (it converts "
                                f"{', '.join(sorted(self.handlers))}, what Teachable Machine image models use); this is not a "
                                "Teachable Machine image export, or a newer one — please report it")
        self.values[self.model.inputs[0]] = self._fake_quant(self._input(), tensor)
        for op in self.model.ops:
            if len(op.outputs) != 1:
                raise TmImportError(f"{self.where}: {op.kind} with {len(op.outputs)} outputs is not supported")
            self.values[op.outputs[0]] = self._fake_quant(self.handlers[op.kind](op), self.t(op.outputs[0]))
        out = self.t(self.model.outputs[0])
        if len(out.shape) != 2:
            raise TmImportError(f"{self.where}: output shape {list(out.shape)} is not [1, classes]; not an image classifier")
        size = (tensor.shape[1], tensor.shape[2])
        variant = "int8 (QDQ, the file's own quantization)" if self.quantized else "float32"
        doc = f"Teachable Machine TFLite export converted by EdgeTeach trainer import-tm ({variant})"
        return self.g.build(self.values[out.index], size, out.shape[1], "teachable_machine", doc), size, out.shape[1]


def _dequantize(data: np.ndarray, q: Quantization, axis: int) -> np.ndarray:
    shape = [1] * data.ndim
    if q.scale.size > 1:
        shape[axis] = q.scale.size
    scale = q.scale.astype(np.float64).reshape(shape)
    zero = q.zero_point.astype(np.float64).reshape(shape)
    return ((data.astype(np.float64) - zero) * scale).astype(np.float32)


def tflite_to_onnx(model: TfModel, where: str, quantized: bool) -> tuple[onnx.ModelProto, tuple[int, int], int]:
    """(ONNX model, input (height, width), classes). `quantized` selects the QDQ int8 form (quantized files only)."""
    if quantized and not model.is_quantized:
        raise ValueError("an int8 graph needs a quantized TFLite file")
    return _Converter(model, quantized, where).convert()
