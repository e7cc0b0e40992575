"""A Keras / tfjs-layers model (topology JSON + weights by name) -> an ONNX graph with the bundle's image contract.

Teachable Machine's Keras (.h5) and TF.js (model.json) image exports hold the same thing: a Sequential of the
MobileNetV2 0.35 feature extractor (a Functional model cut at `out_relu`, plus global average pooling) and a
Sequential head Dense(100, relu) -> Dense(N, softmax), with the same layer configs; only the weight container
differs (h5_weights, tfjs_weights). The configs are read as plain JSON, not by Keras, so the Keras 2.4 configs
recent Keras refuses (`"groups": 1` ...) are no problem.

Layout: Keras is channels-last, ONNX convolutions NCHW, so the pixels are transposed once after TM's [-1, 1]
scaling and every 4-D value is NCHW from then on; shapes are tracked statically to make "same" padding explicit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from trainer.tm.errors import TmImportError
from trainer.tm.graph import INPUT_NAME, NCHW_TO_NHWC, WAVEFORM_NAME, GraphBuilder, same_pads
from trainer.tm.sound_frontend import BINS, FRAMES, WINDOW_SAMPLES, spectrogram_nchw

Config = dict[str, Any]  # one layer's JSON as Keras wrote it


@dataclass(frozen=True)
class Value:
    name: str  # ONNX value
    shape: tuple[int, ...]  # without batch: (C, H, W) for images, (F,) for vectors


class _Converter:
    def __init__(self, weights: Mapping[str, np.ndarray], where: str) -> None:
        self.weights, self.where = weights, where
        self.g = GraphBuilder()
        self.used: set[str] = set()
        self.layers: dict[str, Callable[[Config, list[Value]], Value]] = {
            "InputLayer": lambda c, xs: xs[0],
            "Dropout": lambda c, xs: xs[0],
            "ZeroPadding2D": self._zero_padding,
            "Conv2D": self._conv,
            "DepthwiseConv2D": self._conv,
            "BatchNormalization": self._batch_norm,
            "ReLU": self._relu,
            "Activation": lambda c, xs: self._activation(xs[0], str(c["config"].get("activation", "linear")), c),
            "Add": self._add,
            "GlobalAveragePooling2D": self._global_average,
            "Flatten": self._flatten,
            "MaxPooling2D": self._max_pool,
            "Dense": self._dense,
            "Softmax": lambda c, xs: self._activation(xs[0], "softmax", c),
        }

    # -- helpers -------------------------------------------------------------------------------------------
    def weight(self, layer: Config, name: str, shape: tuple[int, ...]) -> np.ndarray:
        key = f"{layer['config']['name']}/{name}"
        if key not in self.weights:
            raise TmImportError(f"{self.where}: no weight {key!r} for layer {layer['config']['name']!r}; the weights do not belong to "
                                "this model, or the file is incomplete — download the export again")
        array = self.weights[key]
        if tuple(array.shape) != shape:
            raise TmImportError(f"{self.where}: weight {key!r} has shape {list(array.shape)}, the layer needs {list(shape)}; the "
                                "weights do not belong to this model")
        self.used.add(key)
        return np.asarray(array, np.float32)

    def _fail(self, layer: Config, why: str) -> TmImportError:
        return TmImportError(f"{self.where}: layer {layer['config'].get('name')!r} ({layer['class_name']}): {why}; import-tm converts "
                             "the layers Teachable Machine image models use")

    def _channels_last(self, layer: Config) -> None:
        if layer["config"].get("data_format", "channels_last") != "channels_last":
            raise self._fail(layer, "only channels_last data is supported")

    def _image(self, layer: Config, x: Value) -> tuple[int, int, int]:
        if len(x.shape) != 3:
            raise self._fail(layer, f"expects an image tensor, got shape {list(x.shape)}")
        c, h, w = x.shape
        return c, h, w

    def _activation(self, x: Value, name: str, layer: Config) -> Value:
        hint = f"{layer['config'].get('name', 'act')}_{name}"
        if name == "linear":
            return x
        if name == "relu":
            return Value(self.g.op("Relu", [x.name], hint), x.shape)
        if name == "relu6":
            return self._clip(x, 0.0, 6.0, hint)
        if name == "sigmoid":
            return Value(self.g.op("Sigmoid", [x.name], hint), x.shape)
        if name == "softmax":
            if len(x.shape) != 1:
                raise self._fail(layer, "softmax over an image tensor is not supported")
            return Value(self.g.op("Softmax", [x.name], hint, axis=-1), x.shape)
        raise self._fail(layer, f"activation {name!r} is not supported")

    def _clip(self, x: Value, low: float, high: float, hint: str) -> Value:
        lo = self.g.const(np.array(low, np.float32), "clip_min")
        hi = self.g.const(np.array(high, np.float32), "clip_max")
        return Value(self.g.op("Clip", [x.name, lo, hi], hint), x.shape)

    # -- layers --------------------------------------------------------------------------------------------
    def _zero_padding(self, layer: Config, xs: list[Value]) -> Value:
        self._channels_last(layer)
        c, h, w = self._image(layer, xs[0])
        pad = layer["config"]["padding"]
        if isinstance(pad, int):
            (top, bottom), (left, right) = (pad, pad), (pad, pad)
        elif isinstance(pad[0], int):
            (top, bottom), (left, right) = (pad[0], pad[0]), (pad[1], pad[1])
        else:
            (top, bottom), (left, right) = pad
        pads = self.g.const(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), "pads")
        padded = self.g.op("Pad", [xs[0].name, pads], layer["config"]["name"], mode="constant")
        return Value(padded, (c, h + top + bottom, w + left + right))

    def _conv(self, layer: Config, xs: list[Value]) -> Value:
        cfg = layer["config"]
        self._channels_last(layer)
        c, h, w = self._image(layer, xs[0])
        kh, kw = cfg["kernel_size"]
        strides = tuple(cfg.get("strides", (1, 1)))
        dilations = tuple(cfg.get("dilation_rate", (1, 1)))
        depthwise = layer["class_name"] == "DepthwiseConv2D"
        if not depthwise and int(cfg.get("groups", 1)) != 1:
            raise self._fail(layer, "grouped convolutions are not supported")
        if depthwise:
            mult = int(cfg.get("depth_multiplier", 1))
            kernel = self.weight(layer, "depthwise_kernel", (kh, kw, c, mult))
            out_c = c * mult
            # Keras output channel k * mult + m comes from input channel k: ONNX groups of `mult` filters
            onnx_kernel = kernel.reshape(kh, kw, out_c).transpose(2, 0, 1)[:, None]
        else:
            out_c = int(cfg["filters"])
            onnx_kernel = self.weight(layer, "kernel", (kh, kw, c, out_c)).transpose(3, 2, 0, 1)
        inputs = [xs[0].name, self.g.const(onnx_kernel, f"{cfg['name']}_kernel")]
        if cfg.get("use_bias", True):
            inputs.append(self.g.const(self.weight(layer, "bias", (out_c,)), f"{cfg['name']}_bias"))
        padding = str(cfg.get("padding", "valid"))
        if padding == "same":
            pads = same_pads((h, w), (kh, kw), (strides[0], strides[1]), (dilations[0], dilations[1]))
            out_h, out_w = -(-h // strides[0]), -(-w // strides[1])
        elif padding == "valid":
            pads = [0, 0, 0, 0]
            out_h = (h - (kh - 1) * dilations[0] - 1) // strides[0] + 1
            out_w = (w - (kw - 1) * dilations[1] - 1) // strides[1] + 1
        else:
            raise self._fail(layer, f"padding {padding!r} is not supported")
        y = self.g.op("Conv", inputs, cfg["name"], kernel_shape=[kh, kw], strides=list(strides), dilations=list(dilations), pads=pads,
                      group=c if depthwise else 1)
        return self._activation(Value(y, (out_c, out_h, out_w)), str(cfg.get("activation", "linear")), layer)

    def _batch_norm(self, layer: Config, xs: list[Value]) -> Value:
        cfg = layer["config"]
        x = xs[0]
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, len(x.shape)):
            raise self._fail(layer, f"normalisation over axis {axis} is not supported (only the channels)")
        channels = (x.shape[0],)
        gamma = self.weight(layer, "gamma", channels) if cfg.get("scale", True) else np.ones(channels, np.float32)
        beta = self.weight(layer, "beta", channels) if cfg.get("center", True) else np.zeros(channels, np.float32)
        mean = self.weight(layer, "moving_mean", channels)
        var = self.weight(layer, "moving_variance", channels)
        name = cfg["name"]
        inputs = [x.name, *(self.g.const(a, f"{name}_{k}") for k, a in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)))]
        return Value(self.g.op("BatchNormalization", inputs, name, epsilon=float(cfg.get("epsilon", 1e-3))), x.shape)

    def _relu(self, layer: Config, xs: list[Value]) -> Value:
        cfg = layer["config"]
        if float(cfg.get("negative_slope") or 0.0) != 0.0 or float(cfg.get("threshold") or 0.0) != 0.0:
            raise self._fail(layer, "ReLU with a negative slope or threshold is not supported")
        max_value = cfg.get("max_value")
        if max_value is None:
            return Value(self.g.op("Relu", [xs[0].name], cfg["name"]), xs[0].shape)
        return self._clip(xs[0], 0.0, float(max_value), cfg["name"])

    def _add(self, layer: Config, xs: list[Value]) -> Value:
        if len(xs) < 2 or any(x.shape != xs[0].shape for x in xs):
            raise self._fail(layer, f"adds tensors of shapes {[list(x.shape) for x in xs]}")
        total = xs[0].name
        for x in xs[1:]:
            total = self.g.op("Add", [total, x.name], layer["config"]["name"])
        return Value(total, xs[0].shape)

    def _max_pool(self, layer: Config, xs: list[Value]) -> Value:
        cfg = layer["config"]
        self._channels_last(layer)
        c, h, w = self._image(layer, xs[0])
        kh, kw = cfg.get("pool_size", (2, 2))
        sh, sw = cfg.get("strides") or (kh, kw)
        if cfg.get("padding", "valid") != "valid":
            raise self._fail(layer, "only 'valid' pooling is supported")
        y = self.g.op("MaxPool", [xs[0].name], cfg["name"], kernel_shape=[kh, kw], strides=[sh, sw])
        return Value(y, (c, (h - kh) // sh + 1, (w - kw) // sw + 1))

    def _global_average(self, layer: Config, xs: list[Value]) -> Value:
        self._channels_last(layer)
        c, _, _ = self._image(layer, xs[0])
        if layer["config"].get("keepdims"):
            raise self._fail(layer, "keepdims is not supported")
        return Value(self.g.op("ReduceMean", [xs[0].name], layer["config"]["name"], axes=[2, 3], keepdims=0), (c,))

    def _flatten(self, layer: Config, xs: list[Value]) -> Value:
        x = xs[0]
        if len(x.shape) == 1:
            return x
        nhwc = self.g.op("Transpose", [x.name], f"{layer['config']['name']}_nhwc", perm=list(NCHW_TO_NHWC))
        size = int(np.prod(x.shape))
        shape = self.g.const(np.array([-1, size], np.int64), "flat")
        return Value(self.g.op("Reshape", [nhwc, shape], layer["config"]["name"]), (size,))

    def _dense(self, layer: Config, xs: list[Value]) -> Value:
        cfg = layer["config"]
        x = xs[0]
        if len(x.shape) != 1:
            raise self._fail(layer, f"Dense on a tensor of shape {list(x.shape)} is not supported")
        units = int(cfg["units"])
        inputs = [x.name, self.g.const(self.weight(layer, "kernel", (x.shape[0], units)), f"{cfg['name']}_kernel")]
        if cfg.get("use_bias", True):
            inputs.append(self.g.const(self.weight(layer, "bias", (units,)), f"{cfg['name']}_bias"))
        y = Value(self.g.op("Gemm", inputs, cfg["name"]), (units,))
        return self._activation(y, str(cfg.get("activation", "linear")), layer)

    # -- models --------------------------------------------------------------------------------------------
    def apply(self, layer: Config, xs: list[Value]) -> Value:
        kind = layer.get("class_name")
        if kind in ("Sequential", "Functional", "Model"):
            return self.model(layer, xs)
        if kind not in self.layers:
            raise TmImportError(f"{self.where}: layer {layer.get('config', {}).get('name')!r} is a {kind}, which import-tm does not "
                                f"convert (it converts {', '.join(sorted(self.layers))}); this is not a Teachable Machine image model")
        return self.layers[kind](layer, xs)

    def model(self, config: Config, xs: list[Value]) -> Value:
        body = config.get("config")
        layers = body.get("layers") if isinstance(body, dict) else body
        if not isinstance(layers, list) or not layers:
            raise TmImportError(f"{self.where}: model {config.get('class_name')} has no layers")
        if config["class_name"] == "Sequential":
            x = xs[0]
            for layer in layers:
                x = self.apply(layer, [x])
            return x
        assert isinstance(body, dict)
        values: dict[str, Value] = {}
        inputs = [entry[0] for entry in body.get("input_layers", [])]
        if len(inputs) != 1 or len(xs) != 1:
            raise TmImportError(f"{self.where}: model {body.get('name')!r} has {len(inputs)} inputs; a classifier has one")
        values[inputs[0]] = xs[0]
        for layer in layers:
            name = layer.get("name") or layer["config"]["name"]
            if name in values:
                continue
            nodes = layer.get("inbound_nodes") or []
            if len(nodes) != 1:
                raise TmImportError(f"{self.where}: layer {name!r} is used {len(nodes)} times; shared layers are not supported")
            sources = [entry[0] for entry in nodes[0]]
            missing = [s for s in sources if s not in values]
            if missing:
                raise TmImportError(f"{self.where}: layer {name!r} reads {missing} before they are made; the topology is damaged")
            values[name] = self.apply(layer, [values[s] for s in sources])
        outputs = [entry[0] for entry in body.get("output_layers", [])]
        if len(outputs) != 1 or outputs[0] not in values:
            raise TmImportError(f"{self.where}: model {body.get('name')!r} must have one output, has {outputs}")
        return values[outputs[0]]


def input_shape(config: Config) -> list[Any]:
    """The first `batch_input_shape` in the topology, e.g. [null, 224, 224, 3] or [null, 43, 232, 1]."""
    stack = [config]
    while stack:
        node = stack.pop(0)
        cfg = node.get("config")
        if isinstance(cfg, dict):
            shape = cfg.get("batch_input_shape")
            if isinstance(shape, list):
                return shape
            layers = cfg.get("layers")
            if isinstance(layers, list):
                stack = [*layers, *stack]
        elif isinstance(cfg, list):
            stack = [*cfg, *stack]
    raise TmImportError("no input shape in the model's topology; this is not a Teachable Machine model")


def layers_to_onnx(config: Config, weights: Mapping[str, np.ndarray], where: str,
                   sound: bool = False) -> tuple[onnx.ModelProto, tuple[int, int], int]:
    """(ONNX model, input (height, width), classes) for a Keras/tfjs-layers topology and its weights. `sound`: a
    speech-commands model, fed raw 44.1 kHz audio through TM's front end (sound_frontend) instead of pixels."""
    if not isinstance(config, dict) or config.get("class_name") not in ("Sequential", "Functional", "Model"):
        kind = config.get("class_name") if isinstance(config, dict) else None
        raise TmImportError(f"{where}: the topology is not a Keras model (class_name {kind!r})")
    try:
        shape = input_shape(config)
    except TmImportError as exc:
        raise TmImportError(f"{where}: {exc}") from exc
    converter = _Converter(weights, where)
    if sound:
        if shape[1:] != [FRAMES, BINS, 1]:
            raise TmImportError(f"{where}: input shape {shape} is not speech-commands' [null, {FRAMES}, {BINS}, 1] spectrogram; import-tm "
                                "converts Teachable Machine audio models (BROWSER_FFT)")
        size = (FRAMES, BINS)
        start = Value(spectrogram_nchw(converter.g, WAVEFORM_NAME), (1, FRAMES, BINS))
    else:
        if len(shape) != 4 or shape[3] != 3 or not all(isinstance(d, int) for d in shape[1:3]):
            raise TmImportError(f"{where}: input shape {shape} is not an RGB image [null, H, W, 3]; import-tm converts Teachable Machine "
                                "image and sound models")
        size = (int(shape[1]), int(shape[2]))
        start = Value(converter.g.tm_normalized_nchw(INPUT_NAME), (3, *size))
    try:
        out = converter.model(config, [start])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, TmImportError):
            raise
        raise TmImportError(f"{where}: the model's topology is not what Keras writes ({exc.__class__.__name__}: {exc}); download the "
                            "export again") from exc
    if len(out.shape) != 1:
        raise TmImportError(f"{where}: the model's output has shape {list(out.shape)}, not [classes]; not an image classifier")
    unused = sorted(set(weights) - converter.used)
    if unused:
        raise TmImportError(f"{where}: {len(unused)} weight(s) belong to no layer ({', '.join(unused[:3])} ...); the weights do not "
                            "belong to this model")
    doc = "Teachable Machine Keras/TF.js export converted by EdgeTeach trainer import-tm (float32)"
    model = converter.g.build(out.name, size, out.shape[0], "teachable_machine", doc, WINDOW_SAMPLES if sound else None)
    return model, size, out.shape[0]
