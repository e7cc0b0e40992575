"""A TFLite flatbuffer read into plain Python: tensors (shape, type, constant data, quantization) and
operators (type, inputs, outputs, options), through the `tflite` package's generated schema bindings (pure
Python, no TensorFlow). `tflite_onnx` turns the result into ONNX."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tflite

from trainer.tm.errors import TmImportError

# Edge TPU exports hold the whole network in one custom operator that only the Coral runtime can run.
EDGE_TPU_OP = "edgetpu-custom-op"
TFLITE_IDENTIFIER = b"TFL3"

_DTYPES: dict[int, type[np.generic]] = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.INT16: np.int16,
    tflite.TensorType.INT8: np.int8,
}
_OP_NAMES = {code: name for name, code in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}


@dataclass(frozen=True)
class Quantization:
    scale: np.ndarray  # float32 [1] per tensor, or [channels] per channel
    zero_point: np.ndarray  # int64, same length
    axis: int  # the quantized dimension (per channel)


@dataclass
class TfTensor:
    index: int
    name: str
    dtype: type[np.generic]
    shape: tuple[int, ...]
    data: np.ndarray | None  # constant tensors (weights, biases, paddings, axes)
    quant: Quantization | None


@dataclass
class TfOp:
    kind: str  # builtin operator name, e.g. CONV_2D, or CUSTOM:<code>
    inputs: list[int]  # -1 marks an omitted optional input
    outputs: list[int]
    options: object | None  # the generated options table, already initialised (e.g. tflite.Conv2DOptions)


@dataclass
class TfModel:
    tensors: list[TfTensor]
    ops: list[TfOp]
    inputs: list[int]
    outputs: list[int]
    op_counts: dict[str, int] = field(default_factory=dict)

    @property
    def is_edge_tpu(self) -> bool:
        return f"CUSTOM:{EDGE_TPU_OP}" in self.op_counts

    @property
    def is_quantized(self) -> bool:
        return self.tensors[self.inputs[0]].dtype in (np.uint8, np.int8)


_OPTION_TABLES = {
    "CONV_2D": tflite.Conv2DOptions,
    "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
    "FULLY_CONNECTED": tflite.FullyConnectedOptions,
    "ADD": tflite.AddOptions,
    "MEAN": tflite.ReducerOptions,
    "SOFTMAX": tflite.SoftmaxOptions,
}


def _options(kind: str, op: tflite.Operator) -> object | None:
    table_type = _OPTION_TABLES.get(kind)
    raw = op.BuiltinOptions()
    if table_type is None or raw is None:
        return None
    table = table_type()
    table.Init(raw.Bytes, raw.Pos)
    return table


def _quantization(tensor: tflite.Tensor) -> Quantization | None:
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32).reshape(-1)
    zero_point = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64).reshape(-1) if q.ZeroPointLength() else np.zeros_like(scale, np.int64)
    return Quantization(scale=scale, zero_point=zero_point, axis=int(q.QuantizedDimension()))


def _constant(model: tflite.Model, tensor: tflite.Tensor, raw: bytes, dtype: type[np.generic], shape: tuple[int, ...],
              where: str) -> np.ndarray | None:
    buffer = model.Buffers(tensor.Buffer())
    if buffer is None:
        return None
    if buffer.Offset() > 1:  # large models keep buffers after the flatbuffer, addressed by offset and size
        start, size = int(buffer.Offset()), int(buffer.Size())
        data = raw[start : start + size]
        if len(data) != size:
            raise TmImportError(f"{where}: tensor {tensor.Name()!r} points past the end of the file; the file is truncated — "
                                "download the export again")
    elif buffer.DataLength() == 0:
        return None
    else:
        data = buffer.DataAsNumpy().tobytes()
    count = int(np.prod(shape)) if shape else 1
    if len(data) != count * np.dtype(dtype).itemsize:
        raise TmImportError(f"{where}: tensor {tensor.Name().decode(errors='replace')!r} holds {len(data)} bytes, its shape "
                            f"{list(shape)} needs {count * np.dtype(dtype).itemsize}; the file is damaged — download the export again")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def read_tflite(raw: bytes, where: str) -> TfModel:
    """Parses a .tflite file's bytes. Raises TmImportError (not a TFLite file, truncated, unsupported type)."""
    if len(raw) < 8 or raw[4:8] != TFLITE_IDENTIFIER:
        raise TmImportError(f"{where}: not a TFLite model (no {TFLITE_IDENTIFIER.decode()} identifier); pass the .tflite file "
                            "Teachable Machine exported")
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        if model.SubgraphsLength() != 1:
            raise TmImportError(f"{where}: {model.SubgraphsLength()} subgraphs; a Teachable Machine image export has one")
        graph = model.Subgraphs(0)
        tensors = []
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            if t.Type() not in _DTYPES:
                raise TmImportError(f"{where}: tensor {t.Name()!r} has TFLite type {t.Type()}, which import-tm does not read")
            dtype = _DTYPES[t.Type()]
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            tensors.append(TfTensor(i, t.Name().decode(errors="replace"), dtype, shape, _constant(model, t, raw, dtype, shape, where),
                                    _quantization(t)))
        ops: list[TfOp] = []
        counts: dict[str, int] = {}
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            kind = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
            if kind == "CUSTOM":
                kind = f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
            counts[kind] = counts.get(kind, 0) + 1
            ops.append(TfOp(kind, [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else [],
                            [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else [], _options(kind, op)))
        inputs = [int(x) for x in graph.InputsAsNumpy()]
        outputs = [int(x) for x in graph.OutputsAsNumpy()]
    except TmImportError:
        raise
    except Exception as exc:  # the generated bindings raise struct/index errors on damaged files
        raise TmImportError(f"{where}: cannot read this TFLite file ({exc.__class__.__name__}: {exc}); it is damaged or truncated — "
                            "download the export again") from exc
    if len(inputs) != 1 or len(outputs) != 1:
        raise TmImportError(f"{where}: {len(inputs)} inputs and {len(outputs)} outputs; a Teachable Machine classifier has one of each")
    return TfModel(tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, op_counts=counts)
