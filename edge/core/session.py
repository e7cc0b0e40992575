"""ONNX Runtime sessions for bundles: providers, threads, and a checked input/output contract."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import onnxruntime as ort

from edge.core.bundle import Bundle, BundleError

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


# TensorRT compiles an engine per model the first time, which takes minutes on a Jetson: keep the
# engines on disk, keyed by model, so a restart of the service does not pay that again.
TRT_CACHE_DIR = os.environ.get("EDGETEACH_TRT_CACHE", os.path.join(os.environ.get("STATE_DIRECTORY",
                                                                                  os.path.expanduser("~/.cache/edgeteach")), "trt-cache"))


def _provider_entry(name: str) -> str | tuple[str, dict[str, str]]:
    if name == "TensorrtExecutionProvider":
        return (name, {"trt_engine_cache_enable": "True", "trt_engine_cache_path": TRT_CACHE_DIR, "trt_timing_cache_enable": "True"})
    return name


def resolve_providers(wanted: Sequence[str] | None) -> list[str]:
    """Maps short names (cpu, cuda, tensorrt) to ONNX Runtime providers that exist here, in the order
    given, always ending with CPU so a Jetson without a working CUDA build still runs."""
    available = set(ort.get_available_providers())
    chosen: list[str] = []
    for name in wanted or ["cpu"]:
        full = PROVIDER_NAMES.get(name.lower(), name)
        if full in available:
            chosen.append(full)
        else:
            log.warning("execution provider %s is not available in this onnxruntime build (have: %s); skipping it", name,
                        ", ".join(sorted(available)))
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def make_session(model_path: str | Path, threads: int = 0, providers: Sequence[str] | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))  # 0 = ONNX Runtime picks (all cores)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        chosen = resolve_providers(providers)
        if "TensorrtExecutionProvider" in chosen:
            os.makedirs(TRT_CACHE_DIR, exist_ok=True)
        return ort.InferenceSession(str(model_path), sess_options=options, providers=[_provider_entry(p) for p in chosen])
    except Exception as exc:  # onnxruntime raises several private exception types
        raise BundleError(f"{model_path}: ONNX Runtime cannot load this model ({exc}); the file is damaged "
                          "or not ONNX — re-export it") from exc


class Classifier:
    """One bundle variant loaded in one ONNX Runtime session, with the I/O contract checked."""

    def __init__(self, bundle: Bundle, variant: str = "fp32", threads: int = 0, providers: Sequence[str] | None = None) -> None:
        self.bundle = bundle
        self.variant = variant
        self.model_path = bundle.model_path(variant)
        self.sha256 = bundle.sha256(variant)
        self.session = make_session(self.model_path, threads, providers)
        self._check_contract()
        self.input_name = self.session.get_inputs()[0].name

    def _check_contract(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        where = self.model_path
        if len(inputs) != 1 or len(outputs) < 1:
            raise BundleError(f"{where}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        want_type = {"uint8": "tensor(uint8)", "float32": "tensor(float)"}.get(self.bundle.input.dtype)
        if inputs[0].type != want_type:
            raise BundleError(f"{where}: model input is {inputs[0].type} but the manifest promises {self.bundle.input.dtype}; the bundle "
                              "is mismatched — re-export it")
        model_shape = inputs[0].shape
        for got, want in zip(model_shape[1:], self.bundle.input.shape[1:]):
            if isinstance(got, int) and want > 0 and got != want:
                raise BundleError(f"{where}: model input shape {model_shape} does not match the manifest's {list(self.bundle.input.shape)}")
        n_out = outputs[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.bundle.labels):
            raise BundleError(f"{where}: model has {n_out} outputs but the bundle lists {len(self.bundle.labels)} labels; the bundle is "
                              "mismatched — re-export it")

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities [N, classes] for a batch already in the model's input layout."""
        return np.asarray(self.session.run(None, {self.input_name: batch})[0], dtype=np.float32)

    @property
    def resize_policy(self) -> str:
        return str(self.bundle.preprocessing.get("resize", "center_crop_square"))

    def predict_image(self, rgb: np.ndarray) -> np.ndarray:
        """Probabilities [classes] for one RGB uint8 image of any size."""
        from edge.core.images import fit_image  # here, not at the top: a sound-only device never loads OpenCV

        fitted = fit_image(rgb, self.bundle.image_size, self.resize_policy)
        return cast(np.ndarray, self.run(fitted[None])[0])

    def predict_images(self, fitted: np.ndarray) -> np.ndarray:
        """Probabilities [N, classes] for images already fitted to the input size."""
        return self.run(np.ascontiguousarray(fitted, dtype=np.uint8))

    def predict_waveform(self, window: np.ndarray) -> np.ndarray:
        """Probabilities [classes] for one mono float32 window at the bundle's sample rate."""
        samples = np.zeros(self.bundle.window_samples, dtype=np.float32)
        window = np.asarray(window, dtype=np.float32)[: self.bundle.window_samples]
        samples[: len(window)] = window
        return cast(np.ndarray, self.run(samples[None])[0])


def load_classifier(path: str | Path, variant: str = "fp32", threads: int = 0, providers: Sequence[str] | None = None) -> Classifier:
    from edge.core.bundle import load_bundle

    return Classifier(load_bundle(path), variant=variant, threads=threads, providers=providers)
