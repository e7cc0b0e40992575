"""Export to ONNX, the parity check, int8 quantization and the bundle's manifest (task-agnostic).

Each step takes a torch model and plain numpy inputs in the model's input layout, so the image and the
audio trainers share them: the image model takes uint8 NHWC pixels, the audio model a float32 waveform.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from torch import nn

from edge.core.bundle import LABELS_NAME, VARIANT_FILES, write_labels, write_manifest

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-3  # max abs difference of probabilities, ORT fp32 vs PyTorch
# Only the backbone's bulk is quantized. The softmax output is already in [0, 1], the input normalisation
# works on raw pixels, and the head (Gemm/MatMul) is tiny but sits right before the decision: quantizing
# them only loses resolution (measured once, not in docs/benchmarks.md: mean |diff| of probabilities
# 0.0162 with the head quantized, 0.0140 without, on the ASL benchmark set).
QUANTIZED_OPS = ("Conv", "Add", "Relu", "Clip", "GlobalAveragePool", "ReduceMean", "AveragePool")
# The first convolutions (stem and the first blocks of EfficientNet-Lite0) stay float: quantizing them costs
# accuracy the speed-up does not pay for. Measured once on two benchmark sets, not in docs/benchmarks.md
# (that side study has no results file): everything quantized, int8 lost 11.7 accuracy points (98.2 -> 86.5 %);
# on the 12-MP two-class set, keeping the first 6 / 9 / 15 convs float gave mean |diff| of probabilities
# 0.0039 / 0.0027 / 0.0022 and 2 / 0 / 0 top-1 flips on its 362 images, at 1.6 / 1.5 / 1.3x the fp32 speed
# (1 thread). The first 3 float already fixed most of the loss on the ASL set (mean |diff| 0.014).
FLOAT_FIRST_CONVS = 9
# The image trainer's recipe since issue 17 ("int8 that pays"): only the first 3 convolutions float, and
# full-range (8-bit) weights. Measured on a CPU with 8-bit dot products (AVX-512 VNNI, like ARM's sdot/udot,
# which multiply without the int16 saturation reduce_range guards against on older x86): 2.01x / 2.02x the
# fp32 speed (thread CPU time, one thread) at 97.3 % / 100.0 % int8 accuracy against fp32's 96.4 % / 99.1 %
# on the two bench sets, where the recipe above gave 1.68x / 1.72x (bench/results/int8-study_asl_vnni.json,
# int8-study_phone_vnni.json; docs/benchmarks.md, "int8 that pays"). Quantizing the first 3 convolutions
# too was slower (they have few channels) and cost accuracy; keeping reduce_range cost 2.7 points on ASL.
IMAGE_FLOAT_FIRST_CONVS = 3
IMAGE_REDUCE_RANGE = False
# The other quantize_int8 defaults (MinMax, QDQ, per-channel, reduce_range, 128 calibration images) were
# re-checked against percentile, entropy, moving-average MinMax, symmetric activations, QOperator and more
# calibration views: none was better on both benchmark sets across calibration picks (docs/benchmarks.md,
# "int8 calibration study"; bench/study_int8_calibration.py).


class ExportError(RuntimeError):
    """Export produced a model that does not behave like the trained one."""


class ParityError(ExportError):
    pass


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, input_name: str, output_name: str = "probabilities") -> None:
    """Legacy (TorchScript) exporter with a dynamic batch dimension: it handles these CNNs reliably and
    quickly; the dynamo exporter adds minutes and nothing these graphs need."""
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))


def torch_predict(model: nn.Module, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    outs: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))).numpy())
    return np.concatenate(outs).astype(np.float32)


def batch_session(path: str | Path, threads: int = 0) -> onnxruntime.InferenceSession:
    """A session for bulk work on the workstation: all cores, but idle threads sleep instead of
    spinning. On a busy 2-core machine spinning threads made batch inference 30 % slower than one
    thread; without spinning two threads are never slower than one (bench/bench_image_trainer.py)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def ort_predict(path: str | Path, inputs: np.ndarray, batch_size: int = 32, threads: int = 0) -> np.ndarray:
    session = batch_session(path, threads=threads)
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: np.ascontiguousarray(inputs[s : s + batch_size])})[0] for s in range(0, len(inputs), batch_size)]
    return np.concatenate(outs).astype(np.float32)


def check_parity(model: nn.Module, onnx_path: str | Path, inputs: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> dict[str, Any]:
    """ONNX Runtime vs PyTorch on real inputs; raises ParityError beyond `tolerance` or when the top
    class differs on any input (the export would change what the device decides)."""
    if len(inputs) == 0:
        raise ParityError("parity check needs at least one input")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # eager PyTorch with 2 threads on a busy 2-core machine ran 7x slower than with 1
    try:
        expected = torch_predict(model.eval(), inputs)
    finally:
        torch.set_num_threads(threads)
    got = ort_predict(onnx_path, inputs)
    if got.shape != expected.shape:
        raise ParityError(f"{onnx_path}: ONNX output shape {got.shape} differs from PyTorch's {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    flips = int(np.sum(got.argmax(-1) != expected.argmax(-1)))
    result = {"max_abs_diff": diff, "tolerance": tolerance, "n": int(len(inputs)), "top1_disagreements": flips}
    if not np.isfinite(diff) or diff > tolerance:
        raise ParityError(
            f"{onnx_path}: ONNX Runtime and PyTorch disagree on {len(inputs)} validation inputs: max |diff| of "
            f"probabilities {diff:.3g} > tolerance {tolerance:g} ({flips} top-1 changes). The export is broken; "
            f"do not ship it. Re-run the export; if it persists report it with this message"
        )
    return result


class _Calibration:
    """onnxruntime.quantization.CalibrationDataReader over numpy inputs, in small batches."""

    def __init__(self, input_name: str, inputs: np.ndarray, batch_size: int = 8) -> None:
        self._batches: Iterator[np.ndarray] = iter([inputs[s : s + batch_size] for s in range(0, len(inputs), batch_size)])
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch)}


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: np.ndarray,
    fmt: str = "qdq",
    per_channel: bool = True,
    reduce_range: bool = True,
    method: str = "minmax",
    op_types: Sequence[str] | None = QUANTIZED_OPS,
    nodes_to_exclude: Sequence[str] = (),
    float_first_convs: int = FLOAT_FIRST_CONVS,
    extra_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Static int8 quantization calibrated on real training inputs.

    Per-channel weights matter for depthwise convolutions (EfficientNet-Lite, MobileNet), whose channels'
    ranges differ by orders of magnitude; reduce_range (7-bit weights) avoids the int16 saturation of
    AVX2 u8s8 kernels on x86 CPUs without VNNI and costs nothing measurable on ARM."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    input_name = graph.input[0].name
    convs = [node.name for node in graph.node if node.op_type == "Conv"]
    excluded = [*nodes_to_exclude, *convs[: max(0, float_first_convs)]]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantizer logs hundreds of INFO lines to the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(out_path),
                _Calibration(input_name, calibration),
                quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                  "entropy": CalibrationMethod.Entropy}[method],
                op_types_to_quantize=list(op_types) if op_types else None,
                nodes_to_exclude=excluded or None,
                extra_options=dict(extra_options or {}),
            )
    finally:
        root.setLevel(level)
    return {"format": fmt, "per_channel": per_channel, "reduce_range": reduce_range, "calibration": method,
            "calibration_inputs": int(len(calibration)), "float_nodes": excluded,
            **({"extra_options": dict(extra_options)} if extra_options else {})}


def write_bundle(
    out_dir: Path,
    *,
    task: str,
    labels: Sequence[str],
    input_spec: dict[str, Any],
    preprocessing: dict[str, Any],
    metrics: dict[str, Any],
    extra: dict[str, Any],
) -> Path:
    """labels.txt and manifest.json beside the model files already in out_dir."""
    from trainer import __version__

    write_labels(out_dir / LABELS_NAME, list(labels))
    variants = {v: f for v, f in VARIANT_FILES.items() if (out_dir / f).is_file()}
    manifest = {
        "task": task,
        "labels": list(labels),
        "input": input_spec,
        "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, len(labels)]},
        "preprocessing": preprocessing,
        "variants": variants,
        "metrics": metrics,
        "trainer_version": __version__,
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        **extra,
    }
    return write_manifest(out_dir, manifest)


def remove_stale(out_dir: Path) -> None:
    """A previous run's model files must not survive beside a new manifest."""
    for name in [*VARIANT_FILES.values(), "manifest.json"]:
        path = out_dir / name
        if path.exists():
            os.remove(path)
