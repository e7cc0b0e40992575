"""The machine: Python, the packages the device needs, ONNX Runtime's execution providers, and what board
this is (Raspberry Pi, Jetson)."""

from __future__ import annotations

import importlib
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.doctor.base import CheckResult, active_pipelines

if TYPE_CHECKING:
    from edge.config import EdgeConfig

JETSON_ORT_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"
REINSTALL_FIX = ("reinstall the environment: `sudo deploy/install.sh` from the EdgeTeach source "
                 "(or `pip install 'edgeteach[edge]'` in your venv)")


def device_model() -> str:
    try:
        return Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode("utf-8", "replace")
    except OSError:
        return ""


def is_raspberry_pi() -> bool:
    return "Raspberry Pi" in device_model()


def is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists() or "Jetson" in device_model()


def check_python() -> list[CheckResult]:
    version = platform.python_version()
    if sys.version_info < (3, 10):  # noqa: UP036 -- the doctor reports an old interpreter instead of failing on it
        return [CheckResult("python", "fail", f"Python {version} at {sys.executable}",
                            "EdgeTeach needs Python 3.10 or later: use Raspberry Pi OS bookworm, JetPack 6 or Debian 12")]
    return [CheckResult("python", "ok", f"{version} ({sys.executable})")]


def _module_version(module: Any) -> str:
    return str(getattr(module, "__version__", None) or getattr(module, "VERSION", "?"))


def check_packages(needs_portaudio: bool) -> list[CheckResult]:
    rows: list[CheckResult] = []
    try:
        from importlib.metadata import PackageNotFoundError, version

        import edge

        try:
            edge_version = version("edgeteach")
        except PackageNotFoundError:
            edge_version = "source tree"
        rows.append(CheckResult("edgeteach", "ok", f"{edge_version} ({Path(edge.__file__).resolve().parent})"))
    except Exception as exc:  # pragma: no cover - we are running inside edge
        rows.append(CheckResult("edgeteach", "fail", f"cannot read the version ({exc})", REINSTALL_FIX))
    for label, module_name, minimum in (
        ("onnxruntime", "onnxruntime", None),
        ("numpy", "numpy", None),
        ("opencv", "cv2", None),
        ("paho-mqtt", "paho.mqtt", (2, 0)),
        ("pydantic", "pydantic", (2, 0)),
        ("pyyaml", "yaml", None),
        ("psutil", "psutil", None),
        ("prometheus-client", "prometheus_client", None),
    ):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            rows.append(CheckResult(label, "fail", f"cannot import {module_name} ({exc})", REINSTALL_FIX))
            continue
        text = _module_version(module)
        if minimum is not None:
            try:
                have = tuple(int(part) for part in text.split(".")[:2])
            except ValueError:
                have = minimum
            if have < minimum:
                rows.append(CheckResult(label, "fail", f"{text} is too old (need {'.'.join(map(str, minimum))} or later)", REINSTALL_FIX))
                continue
        rows.append(CheckResult(label, "ok", text))
    try:
        import sounddevice

        rows.append(CheckResult("sounddevice", "ok",
                                f"{sounddevice.__version__}, {str(sounddevice.get_portaudio_version()[1]).split(',')[0]}"))
    except OSError as exc:
        rows.append(CheckResult(
            "sounddevice", "fail" if needs_portaudio else "warn",
            f"PortAudio is missing ({exc})", "install it: `sudo apt install libportaudio2`",
        ))
    except Exception as exc:
        rows.append(CheckResult("sounddevice", "fail" if needs_portaudio else "warn", f"cannot import sounddevice ({exc})", REINSTALL_FIX))
    return rows


def check_providers(config: EdgeConfig | None) -> list[CheckResult]:
    try:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    except Exception as exc:
        return [CheckResult("onnxruntime providers", "fail", f"cannot list providers ({exc})", REINSTALL_FIX)]
    short = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "CUDA", "TensorrtExecutionProvider": "TensorRT"}
    shown = ", ".join(short.get(name, name) for name in available)
    gpu = any(name in available for name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
    wanted: dict[str, list[str]] = {}
    for pipeline in active_pipelines(config):
        for provider in pipeline.providers:
            full = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}.get(provider)
            if full and full not in available:
                wanted.setdefault(provider, []).append(pipeline.name)
    jetson_fix = (
        "install ONNX Runtime with GPU providers for JetPack 6: `sudo deploy/install.sh --onnxruntime-gpu --extra-index-url "
        f"{JETSON_ORT_INDEX}` (docs/jetson.md)"
        if is_jetson()
        else "install onnxruntime-gpu matching your CUDA (`sudo deploy/install.sh --onnxruntime-gpu`), or set providers: [cpu]"
    )
    if wanted:
        asked = "; ".join(f"{name} (wanted by {', '.join(names)})" for name, names in wanted.items())
        return [CheckResult("onnxruntime providers", "warn", f"{shown}; missing {asked}: those pipelines run on the CPU", jetson_fix)]
    if is_jetson() and not gpu:
        return [CheckResult("onnxruntime providers", "warn", f"{shown}: this Jetson's GPU is unused (CPU-only onnxruntime)", jetson_fix)]
    return [CheckResult("onnxruntime providers", "ok", shown)]
