"""`edge doctor`: checks everything the device daemon depends on and says how to fix each failure.

Each check returns rows of (status, name, detail, fix). `fail` means something the configured service
NEEDS is broken (the command exits non-zero); `warn` is worth knowing but the service can run; `skip`
means the check does not apply here (no such hardware, feature off). Checks never raise: a check that
crashes becomes a `fail` row naming the exception, so one broken library cannot hide the others.
"""

from __future__ import annotations

import glob
import importlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Optional, TypeVar
from urllib.parse import urlparse

Status = Literal["ok", "warn", "fail", "skip"]

DEFAULT_CONFIG = Path("/etc/edgeteach/config.yaml")
STATE_DIR = Path("/var/lib/edgeteach")
JETSON_ORT_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"
REINSTALL_FIX = "reinstall the environment: `sudo deploy/install.sh` from the EdgeTeach source (or `pip install 'edgeteach[edge]'` in your venv)"


@dataclass
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class DoctorOptions:
    config_path: Optional[Path] = None
    config_explicit: bool = False  # a config named on the command line must exist
    mqtt_timeout_s: float = 3.0
    open_sources: Optional[bool] = None  # open cameras and grab a frame; None: yes unless edgeteach.service runs (it holds them)
    service_holds_sources: bool = False  # set by run_checks when it decided not to open them for that reason
    source_timeout_s: float = 8.0


T = TypeVar("T")


def _call_with_timeout(fn: Callable[[], T], timeout_s: float) -> T:
    """Runs fn in a daemon thread; raises TimeoutError when it does not return in time (a wedged camera
    driver must not hang the doctor)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="doctor-probe")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# ---------------------------------------------------------------------------------------------------
# The machine


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
    if sys.version_info < (3, 10):
        return [CheckResult("python", "fail", f"Python {version} at {sys.executable}", "EdgeTeach needs Python 3.10 or later: use Raspberry Pi OS bookworm, JetPack 6 or Debian 12")]
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

        rows.append(CheckResult("sounddevice", "ok", f"{sounddevice.__version__}, {str(sounddevice.get_portaudio_version()[1]).split(',')[0]}"))
    except OSError as exc:
        rows.append(CheckResult(
            "sounddevice", "fail" if needs_portaudio else "warn",
            f"PortAudio is missing ({exc})", "install it: `sudo apt install libportaudio2`",
        ))
    except Exception as exc:
        rows.append(CheckResult("sounddevice", "fail" if needs_portaudio else "warn", f"cannot import sounddevice ({exc})", REINSTALL_FIX))
    return rows


def check_providers(config: Any) -> list[CheckResult]:
    try:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    except Exception as exc:
        return [CheckResult("onnxruntime providers", "fail", f"cannot list providers ({exc})", REINSTALL_FIX)]
    short = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "CUDA", "TensorrtExecutionProvider": "TensorRT"}
    shown = ", ".join(short.get(name, name) for name in available)
    gpu = any(name in available for name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))
    wanted: dict[str, list[str]] = {}
    for pipeline in _active_pipelines(config):
        for provider in pipeline.providers:
            full = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}.get(provider)
            if full and full not in available:
                wanted.setdefault(provider, []).append(pipeline.name)
    jetson_fix = (
        f"install ONNX Runtime with GPU providers for JetPack 6: `sudo deploy/install.sh --onnxruntime-gpu --extra-index-url {JETSON_ORT_INDEX}` (docs/jetson.md)"
        if is_jetson()
        else "install onnxruntime-gpu matching your CUDA (`sudo deploy/install.sh --onnxruntime-gpu`), or set providers: [cpu]"
    )
    if wanted:
        asked = "; ".join(f"{name} (wanted by {', '.join(names)})" for name, names in wanted.items())
        return [CheckResult("onnxruntime providers", "warn", f"{shown}; missing {asked}: those pipelines run on the CPU", jetson_fix)]
    if is_jetson() and not gpu:
        return [CheckResult("onnxruntime providers", "warn", f"{shown}: this Jetson's GPU is unused (CPU-only onnxruntime)", jetson_fix)]
    return [CheckResult("onnxruntime providers", "ok", shown)]


# ---------------------------------------------------------------------------------------------------
# Config


def _active_pipelines(config: Any) -> list[Any]:
    if config is None:
        return []
    return [p for p in config.pipelines if p.enabled]


def check_config(options: DoctorOptions) -> tuple[list[CheckResult], Any]:
    path = options.config_path
    if path is None:
        return [CheckResult("config", "warn", f"no config given and none at {DEFAULT_CONFIG}; broker, bundles and sources are not checked",
                            f"pass one: `edge doctor -c edge.yaml` (start from `edge config example`)")], None
    if not path.exists() and not options.config_explicit:
        return [CheckResult("config", "warn", f"no config at {path}; broker, bundles and sources are not checked",
                            "install one with `sudo deploy/install.sh`, or pass `-c FILE`")], None
    from edge.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        fix = f"edit {path} and run `edge config check {path}` until it passes"
        if any("Permission denied" in line for line in exc.errors):
            fix = f"run the doctor as the service user, who can read it: `sudo -u edgeteach {sys.argv[0] if sys.argv else 'edge'} doctor -c {path}`"
        return [CheckResult("config", "fail", "; ".join(exc.errors), fix)], None
    pipelines = _active_pipelines(config)
    return [CheckResult("config", "ok", f"{path}: device_id {config.device_id}, {len(pipelines)} active pipeline(s), llm {'on' if config.llm.enabled else 'off'}")], config


# ---------------------------------------------------------------------------------------------------
# Cameras


def _video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def _access_problem(path: str) -> Optional[str]:
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} exists but this user ({_user()}) may not open it"
    return None


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def check_cameras(config: Any) -> list[CheckResult]:
    devices = _video_devices()
    camera_pipelines = [p for p in _active_pipelines(config) if p.kind == "camera"]
    rows: list[CheckResult] = []
    if devices:
        blocked = [d for d in devices if _access_problem(d)]
        if blocked:
            rows.append(CheckResult("cameras", "warn", f"found {', '.join(devices)}; no access to {', '.join(blocked)} as {_user()}",
                                    f"add the user to the video group: `sudo usermod -aG video {_user()}` (then log in again)"))
        else:
            rows.append(CheckResult("cameras", "ok", f"found {', '.join(devices)}"))
    else:
        rows.append(CheckResult("cameras", "warn" if camera_pipelines else "skip", "no V4L2 camera (/dev/video*)",
                                "plug in a USB camera or enable the Pi camera; files, streams and picamera2:// need none" if camera_pipelines else ""))
    if is_raspberry_pi() or any(p.source.uri.startswith("picamera2://") for p in camera_pipelines):
        rows.append(_check_picamera2(required=any(p.source.uri.startswith("picamera2://") for p in camera_pipelines)))
    return rows


def _check_picamera2(required: bool, camera_num: Optional[int] = None, name: str = "picamera2") -> CheckResult:
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except Exception as exc:
        return CheckResult(name, "fail" if required else "warn", f"cannot import picamera2 ({exc})",
                           "`sudo apt install python3-picamera2` and a venv made with --system-site-packages (deploy/install.sh does both on a Pi)")
    try:
        cameras = list(Picamera2.global_camera_info())
    except Exception as exc:
        return CheckResult(name, "fail" if required else "warn", f"libcamera cannot list cameras ({exc})", "check the ribbon cable and `rpicam-hello --list-cameras`")
    models = ", ".join(f"{i}: {c.get('Model', '?')}" for i, c in enumerate(cameras))
    if not cameras:
        return CheckResult(name, "fail" if required else "warn", "picamera2 found no camera",
                           "check the ribbon cable (contacts facing the right way, both ends locked) and `rpicam-hello --list-cameras`")
    if camera_num is not None and camera_num >= len(cameras):
        return CheckResult(name, "fail", f"picamera2://{camera_num} asked for, but the cameras are {models}",
                           f"use picamera2://0{' to ' + str(len(cameras) - 1) if len(cameras) > 1 else ''}, or connect the second camera")
    return CheckResult(name, "ok", models if camera_num is None else f"picamera2://{camera_num}: {cameras[camera_num].get('Model', '?')}")


def _busy_fix(path: str) -> str:
    return (f"another program holds {path}: the running edgeteach service does (`sudo systemctl stop edgeteach`, or run "
            f"`edge doctor --no-open`); find others with `sudo fuser -v {path}`")


def check_camera_source(index: int, pipeline: Any, options: DoctorOptions) -> CheckResult:
    from edge.sources.base import SourceError
    from edge.sources.camera import open_camera_source, parse_camera_uri, redact

    name = f"camera {pipeline.name}"
    where = f"pipelines[{index}].source.uri"
    uri = pipeline.source.uri
    try:
        target = parse_camera_uri(uri)
    except SourceError as exc:
        return CheckResult(name, "fail", str(exc), f"fix {where} in the config")
    if target.kind in ("index", "device"):
        path = f"/dev/video{target.value}" if target.kind == "index" else str(target.value)
        if not os.path.exists(path):
            present = ", ".join(_video_devices()) or "none"
            return CheckResult(name, "fail", f"{path} does not exist (cameras here: {present})",
                               f"plug the camera in and check `v4l2-ctl --list-devices`, or set {where} to a camera that exists")
        problem = _access_problem(path)
        if problem:
            return CheckResult(name, "fail", problem, f"add the user to the video group: `sudo usermod -aG video {_user()}` (the service user edgeteach already is)")
    elif target.kind in ("file", "folder"):
        if not os.path.exists(str(target.value)):
            return CheckResult(name, "fail", f"{target.value} does not exist", f"copy the video/images there or fix {where}")
    elif target.kind == "stream":
        parsed = urlparse(str(target.value))
        port = parsed.port or {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}.get(parsed.scheme, 0)
        if parsed.hostname and port:
            try:
                with socket.create_connection((parsed.hostname, port), timeout=options.mqtt_timeout_s):
                    pass
            except OSError as exc:
                return CheckResult(name, "fail", f"{redact(uri)}: cannot reach {parsed.hostname}:{port} ({exc})",
                                   "check the camera's address and that it is on the network (`ping`), and the URL's port")
        return CheckResult(name, "ok", f"{redact(uri)} reachable (the stream itself is not opened by the doctor)")
    if target.kind == "picamera2":
        return _check_picamera2(required=True, camera_num=int(target.value), name=name)
    if not options.open_sources:
        why = "edgeteach.service is running and holds it; --open to try anyway" if options.service_holds_sources else "--no-open"
        return CheckResult(name, "ok", f"{target.describe()} present (not opened: {why})")
    source = open_camera_source(uri, pipeline.source.width, pipeline.source.height, pipeline.source.fps,
                                loop=False, realtime=False, stall_timeout_s=min(5.0, options.source_timeout_s))

    def grab() -> tuple[int, int]:
        source.open()
        try:
            frame = source.read()
            return int(frame.image.shape[1]), int(frame.image.shape[0])
        finally:
            source.close()

    try:
        width, height = _call_with_timeout(grab, options.source_timeout_s)
    except Exception as exc:
        path = f"/dev/video{target.value}" if target.kind == "index" else str(target.value)
        if target.kind in ("index", "device", "csi"):
            fix = _busy_fix(path)
        elif target.kind == "folder":
            fix = f"put .jpg or .png images in {target.value}, or fix {where}"
        else:
            fix = f"check the file plays (`ffprobe {target.value}`) or fix {where}"
        if target.kind == "csi":
            fix = "check the CSI cable and `nvgstcapture-1.0`; OpenCV needs GStreamer (JetPack's python3-opencv); " + fix
        return CheckResult(name, "fail", f"{target.describe()}: cannot read a frame ({exc})", fix)
    return CheckResult(name, "ok", f"{target.describe()}: read a {width}x{height} frame")


# ---------------------------------------------------------------------------------------------------
# Microphones


def check_microphones(config: Any) -> list[CheckResult]:
    mic_pipelines = [p for p in _active_pipelines(config) if p.kind == "microphone" and not p.source.file]
    try:
        import sounddevice as sd

        inputs = [f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices()) if d.get("max_input_channels", 0) > 0]
    except Exception as exc:
        return [CheckResult("microphones", "fail" if mic_pipelines else "warn", f"cannot list audio devices ({exc})", "install PortAudio: `sudo apt install libportaudio2`")]
    if not inputs:
        return [CheckResult("microphones", "fail" if mic_pipelines else "skip", "no audio input device",
                            "plug in a USB microphone and check `arecord -l`; the user needs the audio group" if mic_pipelines else "")]
    return [CheckResult("microphones", "ok", "; ".join(inputs))]


def check_microphone_source(index: int, pipeline: Any) -> CheckResult:
    name = f"microphone {pipeline.name}"
    source = pipeline.source
    if source.file:
        try:
            import soundfile

            info = soundfile.info(source.file)
        except Exception as exc:
            return CheckResult(name, "fail", f"{source.file}: cannot read it as sound ({exc})", f"fix pipelines[{index}].source.file (a WAV or FLAC file)")
        return CheckResult(name, "ok", f"file {source.file}: {info.samplerate} Hz, {info.duration:.1f} s")
    from edge.sources.base import SourceError
    from edge.sources.microphone import resolve_input_device

    try:
        _, info = resolve_input_device(source.device)
    except SourceError as exc:
        return CheckResult(name, "fail", str(exc),
                           f"plug in the microphone (`arecord -l` lists capture devices), add the user to the audio group, or set pipelines[{index}].source.device")
    return CheckResult(name, "ok", f"{info.get('name', source.device)} ({int(info.get('max_input_channels', 0))} ch, {float(info.get('default_samplerate', 0)):.0f} Hz)")


# ---------------------------------------------------------------------------------------------------
# MQTT


def check_mqtt(config: Any, timeout_s: float) -> CheckResult:
    import logging

    from edge.mqtt.connection import MqttConfigError, MqttConnection

    settings = config.mqtt
    where = f"{settings.host}:{settings.port}"
    who = f" as {settings.username}" if settings.username else " anonymously"
    # A TCP probe first: "nothing listens" and "no such host" deserve plainer words than paho's.
    try:
        with socket.create_connection((settings.host, settings.port), timeout=timeout_s):
            pass
    except socket.gaierror as exc:
        return CheckResult("mqtt", "fail", f"broker host {settings.host!r} not found ({exc})", "fix mqtt.host in the config (a hostname or IP this device can resolve)")
    except ConnectionRefusedError:
        local = settings.host in ("localhost", "127.0.0.1", "::1")
        fix = ("start the local broker: `sudo systemctl enable --now mosquitto` (or `sudo apt install mosquitto`)" if local
               else f"start the broker on {settings.host}, or fix mqtt.host/mqtt.port in the config")
        return CheckResult("mqtt", "fail", f"nothing listens on {where} (connection refused)", fix)
    except OSError as exc:
        return CheckResult("mqtt", "fail", f"cannot reach {where} ({exc})", "check the network and firewall between this device and the broker, and mqtt.host/mqtt.port")
    quiet = logging.getLogger("edge.mqtt.connection")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the table reports the failure; the connection's own log lines would repeat it
    connection: Optional[MqttConnection] = None
    try:
        try:
            connection = MqttConnection(settings, client_id=f"edgeteach-doctor-{socket.gethostname()}-{os.getpid()}")
        except MqttConfigError as exc:
            return CheckResult("mqtt", "fail", str(exc), "fix the mqtt: section of the config")
        connection.start()
        if connection.wait_connected(timeout_s):
            return CheckResult("mqtt", "ok", f"connected to {where}{who} (MQTT {settings.protocol}{', TLS' if settings.tls.enabled else ''})")
        error = connection.last_error or f"no CONNACK within {timeout_s:.0f} s"
        if "refused" in error or "authori" in error.lower() or "password" in error.lower():
            fix = ("check mqtt.username and mqtt.password/password_file against the broker's users "
                   "(`sudo mosquitto_passwd /etc/mosquitto/passwd USER`), and its acl_file")
        elif settings.tls.enabled:
            fix = "check mqtt.tls (ca_certs must have signed the broker's certificate; the host name must match it) and that this port speaks TLS"
        else:
            fix = "the port answers but not as an MQTT broker: check mqtt.port (1883 plain, 8883 TLS) and mqtt.tls"
        return CheckResult("mqtt", "fail", f"{where}{who}: {error}", fix)
    finally:
        if connection is not None:
            connection.stop(timeout=1.0, publish_will=False)
        quiet.setLevel(level)


# ---------------------------------------------------------------------------------------------------
# Bundles


def check_bundle(index: int, pipeline: Any) -> CheckResult:
    import numpy as np

    from edge.core.bundle import BundleError, load_bundle
    from edge.core.session import Classifier

    name = f"bundle {pipeline.name}"
    path = Path(pipeline.bundle)
    if not path.exists():
        return CheckResult(name, "fail", f"{path} does not exist",
                           f"copy the folder `trainer train` made to {path} (e.g. `scp -r my-bundle pi@DEVICE:` then `sudo mv ~/my-bundle {path}` "
                           f"and `sudo chown -R edgeteach: {path}`), or fix pipelines[{index}].bundle")
    try:
        bundle = load_bundle(path)
        want = "image" if pipeline.kind == "camera" else "audio"
        if bundle.task != want:
            return CheckResult(name, "fail", f"{path} is an {bundle.task} bundle but {pipeline.name} is a {pipeline.kind} pipeline",
                               f"point pipelines[{index}].bundle at an {want} bundle")
        started = time.perf_counter()
        classifier = Classifier(bundle, variant=pipeline.variant, threads=1, providers=pipeline.providers)
        shape = [1 if d < 0 else d for d in bundle.input.shape]
        probabilities = classifier.run(np.zeros(shape, dtype=np.uint8 if bundle.input.dtype == "uint8" else np.float32))
        elapsed_ms = (time.perf_counter() - started) * 1000
    except BundleError as exc:
        return CheckResult(name, "fail", str(exc), f"copy the bundle again from the trainer's output folder (or re-export it with `trainer train`); `edge config check` names the problem too")
    except Exception as exc:
        return CheckResult(name, "fail", f"{path}: ONNX Runtime cannot run it ({type(exc).__name__}: {exc})", "re-export the bundle with `trainer train`; if it runs on the trainer, report it with this message")
    if probabilities.shape[-1] != len(bundle.labels):
        return CheckResult(name, "fail", f"{path}: model gives {probabilities.shape[-1]} scores for {len(bundle.labels)} labels", "re-export the bundle with `trainer train`")
    return CheckResult(name, "ok", f"{bundle.task}, {len(bundle.labels)} labels, {pipeline.variant} on {', '.join(classifier.providers)} (loaded and ran in {elapsed_ms:.0f} ms)")


# ---------------------------------------------------------------------------------------------------
# LLM


def check_llm(config: Any) -> list[CheckResult]:
    if config is None or not config.llm.enabled:
        return [CheckResult("llm", "skip", "llm.enabled is false" if config is not None else "no config")]
    settings = config.llm
    rows: list[CheckResult] = []
    try:
        import llama_cpp  # type: ignore[import-not-found]
    except Exception as exc:
        return [CheckResult("llm", "fail", f"llama.cpp (llama-cpp-python) cannot be imported ({exc})",
                            "install it: `sudo deploy/install.sh` without --no-llm (add --cuda on a Jetson), or set llm.enabled: false")]
    try:
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        gpu = False
    backend = "GPU offload" if gpu else "CPU only"
    if settings.gpu_layers != 0 and not gpu:
        rows.append(CheckResult("llm", "warn", f"llama-cpp-python {llama_cpp.__version__}, {backend}, but llm.gpu_layers is {settings.gpu_layers}: it will run on the CPU",
                                "rebuild llama.cpp with CUDA: `sudo deploy/install.sh --cuda` (docs/jetson.md), or set llm.gpu_layers: 0"))
    elif is_jetson() and not gpu:
        rows.append(CheckResult("llm", "warn", f"llama-cpp-python {llama_cpp.__version__}, {backend} on a Jetson", "rebuild with CUDA for a 3-10x faster LLM: `sudo deploy/install.sh --cuda`"))
    else:
        rows.append(CheckResult("llm", "ok", f"llama-cpp-python {llama_cpp.__version__}, {backend}"))
    model_row = _check_gguf(settings.model)
    rows.append(model_row)
    if model_row.status == "ok" and settings.model:
        rows.append(_check_generation(Path(settings.model)))
    return rows


def _check_generation(model: Path) -> CheckResult:
    """A few tokens in a child process: a llama.cpp built for another CPU crashes here, not in the service."""
    from edge.llm.smoke import PORTABLE_FLAGS_HINT, smoke_generate

    result = smoke_generate(model, tokens=4, timeout_s=180)
    if result.ok:
        return CheckResult("llm generation", "ok", f"{result.tokens} tokens at {result.tokens_per_s:.1f} tokens/s on 1 thread")
    cause = f"crashed with {result.signal_name}" if result.signal_name else f"failed: {result.detail.splitlines()[-1] if result.detail else '?'}"
    return CheckResult("llm generation", "fail", f"llama.cpp {cause}", PORTABLE_FLAGS_HINT)


def _check_gguf(model: Optional[str]) -> CheckResult:
    if not model:
        return CheckResult("llm model", "fail", "llm.model is not set", "download a GGUF (`edge llm pull`) and set llm.model to its path")
    path = Path(model)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        size = path.stat().st_size
    except OSError as exc:
        return CheckResult("llm model", "fail", f"{path}: {exc.strerror or exc}",
                           f"put the GGUF at {path} readable by the service user (models live in {STATE_DIR}/models), or fix llm.model")
    if magic != b"GGUF":
        return CheckResult("llm model", "fail", f"{path} is not a GGUF file (starts with {magic!r})", "download the model again (`edge llm pull`); llama.cpp reads .gguf files only")
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:
        available = 0
    detail = f"{path} ({size / 1e6:.0f} MB)"
    if available and size > available:
        return CheckResult("llm model", "warn", f"{detail} is larger than the free memory ({available / 1e6:.0f} MB)", "use a smaller or more quantised model (Q4_K_M), or stop other programs")
    return CheckResult("llm model", "ok", detail)


# ---------------------------------------------------------------------------------------------------
# Resources and the SoC


def check_memory() -> CheckResult:
    try:
        import psutil

        memory = psutil.virtual_memory()
    except Exception as exc:
        return CheckResult("memory", "warn", f"cannot read ({exc})")
    detail = f"{memory.available / 2**20:.0f} MiB free of {memory.total / 2**20:.0f} MiB"
    if memory.available < 200 * 2**20:
        return CheckResult("memory", "warn", detail, "stop other programs, use int8 bundles, or disable the LLM (llm.enabled: false)")
    return CheckResult("memory", "ok", detail)


def check_disk() -> CheckResult:
    target = next((p for p in (STATE_DIR, Path.home(), Path("/")) if p.exists()), Path("/"))
    try:
        usage = shutil.disk_usage(target)
    except OSError as exc:
        return CheckResult("disk", "warn", f"cannot read free space of {target} ({exc})")
    free_mb = usage.free / 2**20
    detail = f"{free_mb:.0f} MiB free on {target}"
    if free_mb < 100:
        return CheckResult("disk", "fail", detail, "free space: `sudo journalctl --vacuum-size=100M`, remove old bundles from /var/lib/edgeteach/models")
    if free_mb < 1024:
        return CheckResult("disk", "warn", detail, "less than 1 GiB left: `sudo journalctl --vacuum-size=100M`, remove old bundles and models")
    return CheckResult("disk", "ok", detail)


def check_temperature() -> CheckResult:
    readings: list[tuple[float, str]] = []
    for zone in glob.glob("/sys/class/thermal/thermal_zone*"):
        try:
            millideg = int(Path(zone, "temp").read_text().strip())
            kind = Path(zone, "type").read_text().strip()
        except (OSError, ValueError):
            continue
        readings.append((millideg / 1000.0, kind))
    if not readings:
        return CheckResult("temperature", "skip", "no thermal sensors readable here")
    hottest, kind = max(readings)
    detail = f"{hottest:.1f} °C ({kind})"
    if hottest >= 80.0:
        return CheckResult("temperature", "warn", f"{detail}: the SoC slows down from 80 °C (a Pi at 85 °C throttles hard)",
                           "add a heatsink or the active cooler, give the case airflow, lower max_fps or use int8 bundles")
    return CheckResult("temperature", "ok", detail)


THROTTLE_BITS = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred",
    17: "frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}


def decode_throttled(value: int) -> list[str]:
    return [text for bit, text in THROTTLE_BITS.items() if value & (1 << bit)]


def check_throttling() -> CheckResult:
    binary = shutil.which("vcgencmd")
    if not binary:
        return CheckResult("throttling", "skip", "no vcgencmd (not a Raspberry Pi)" if not is_raspberry_pi() else "vcgencmd not installed")
    try:
        out = subprocess.run([binary, "get_throttled"], capture_output=True, text=True, timeout=5).stdout.strip()
        value = int(out.split("=", 1)[1], 16)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError) as exc:
        return CheckResult("throttling", "warn", f"cannot read `vcgencmd get_throttled` ({exc})", "add the user to the video group (vcgencmd needs /dev/vchiq)")
    problems = decode_throttled(value)
    if not problems:
        return CheckResult("throttling", "ok", f"none (get_throttled=0x{value:x})")
    fix = "use the official power supply (5 V 5 A for a Pi 5, 5 V 3 A for a Pi 4) and a short, thick cable" if value & 0x10001 else \
        "cool the Pi: heatsink or active cooler, airflow in the case"
    return CheckResult("throttling", "warn", f"0x{value:x}: {', '.join(problems)}", fix)


def check_services(config: Any = None) -> list[CheckResult]:
    if not Path("/run/systemd/system").is_dir() or not shutil.which("systemctl"):
        return [CheckResult("service", "skip", "systemd is not running here")]
    rows: list[CheckResult] = []
    for unit in ("edgeteach.service", "edgeteach-llm.service"):
        try:
            enabled = subprocess.run(["systemctl", "is-enabled", unit], capture_output=True, text=True, timeout=5).stdout.strip()
            active = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            rows.append(CheckResult(unit, "skip", f"systemctl failed ({exc})"))
            continue
        wanted = unit == "edgeteach.service" or (config is not None and config.llm.enabled)
        if not enabled or enabled == "not-found":
            rows.append(CheckResult(unit, "skip", "not installed"))
        elif wanted and enabled != "enabled":
            rows.append(CheckResult(unit, "warn", f"{enabled}, {active}: it will not start at boot", f"`sudo systemctl enable --now {unit}`"))
        elif active == "failed":
            rows.append(CheckResult(unit, "warn", f"{enabled}, failed", f"read why: `journalctl -u {unit.removesuffix('.service')} -b -n 50`; fix, then `sudo systemctl restart {unit}`"))
        else:
            rows.append(CheckResult(unit, "ok", f"{enabled}, {active}"))
    return rows


# ---------------------------------------------------------------------------------------------------
# Running them all


def _guard(name: str, fn: Callable[[], Iterable[CheckResult] | CheckResult]) -> list[CheckResult]:
    try:
        result = fn()
    except Exception as exc:  # a broken check must not hide the others
        return [CheckResult(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}", "report this with the output of `edge doctor --json`")]
    return [result] if isinstance(result, CheckResult) else list(result)


def service_active(unit: str = "edgeteach.service") -> bool:
    if not Path("/run/systemd/system").is_dir() or not shutil.which("systemctl"):
        return False
    try:
        return subprocess.run(["systemctl", "is-active", "--quiet", unit], timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_checks(options: DoctorOptions) -> list[CheckResult]:
    if options.open_sources is None:
        # A camera streams to one program at a time: opening it under the running service would only
        # report "busy" for a camera that works.
        active = service_active()
        options = replace(options, open_sources=not active, service_holds_sources=active)
    rows: list[CheckResult] = []
    rows += _guard("python", check_python)
    config_rows, config = check_config(options)
    pipelines = _active_pipelines(config)
    needs_portaudio = any(p.kind == "microphone" and not p.source.file for p in pipelines)
    rows += _guard("packages", lambda: check_packages(needs_portaudio))
    rows += config_rows
    rows += _guard("onnxruntime providers", lambda: check_providers(config))
    rows += _guard("cameras", lambda: check_cameras(config))
    rows += _guard("microphones", lambda: check_microphones(config))
    if config is not None:
        rows += _guard("mqtt", lambda: check_mqtt(config, options.mqtt_timeout_s))
        for index, pipeline in enumerate(config.pipelines):
            if not pipeline.enabled:
                continue
            rows += _guard(f"bundle {pipeline.name}", lambda i=index, p=pipeline: check_bundle(i, p))
            if pipeline.kind == "camera":
                rows += _guard(f"camera {pipeline.name}", lambda i=index, p=pipeline: check_camera_source(i, p, options))
            else:
                rows += _guard(f"microphone {pipeline.name}", lambda i=index, p=pipeline: check_microphone_source(i, p))
    rows += _guard("llm", lambda: check_llm(config))
    rows += _guard("memory", check_memory)
    rows += _guard("disk", check_disk)
    rows += _guard("temperature", check_temperature)
    if is_raspberry_pi() or shutil.which("vcgencmd"):
        rows += _guard("throttling", check_throttling)
    rows += _guard("service", lambda: check_services(config))
    return rows


def exit_code(rows: list[CheckResult]) -> int:
    return 1 if any(row.status == "fail" for row in rows) else 0


def as_json(rows: list[CheckResult], config_path: Optional[Path]) -> dict[str, Any]:
    return {
        "ok": exit_code(rows) == 0,
        "config": str(config_path) if config_path else None,
        "failures": sum(row.status == "fail" for row in rows),
        "warnings": sum(row.status == "warn" for row in rows),
        "checks": [asdict(row) for row in rows],
    }


def format_table(rows: list[CheckResult], color: bool = False) -> str:
    labels = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}
    colors = {"ok": "\033[32m", "warn": "\033[33m", "fail": "\033[31;1m", "skip": "\033[2m"}
    width = max([len(row.name) for row in rows] + [5])
    lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  DETAIL"]
    for row in rows:
        label = f"{labels[row.status]:<6}"
        if color:
            label = f"{colors[row.status]}{label}\033[0m"
        lines.append(f"{label}  {row.name:<{width}}  {row.detail}")
        if row.fix and row.status in ("fail", "warn"):
            lines.append(f"{'':<6}  {'':<{width}}  fix: {row.fix}")
    failures = sum(row.status == "fail" for row in rows)
    warnings = sum(row.status == "warn" for row in rows)
    if failures:
        lines.append(f"\n{failures} problem(s) to fix (FAIL) and {warnings} warning(s): the service cannot work as configured until each FAIL is fixed.")
    elif warnings:
        lines.append(f"\nNo problems; {warnings} warning(s) worth a look.")
    else:
        lines.append("\nAll checks passed.")
    return "\n".join(lines)
